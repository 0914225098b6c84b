//go:build tools

// Package tools pins VictoriaLogs, a real Loki-protocol server used by
// vigil's integration tests. It is built with:
//
//	go build -o ../../bin/victoria-logs github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs
package tools

import _ "github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs"
