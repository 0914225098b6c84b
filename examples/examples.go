// Package examples holds vigil's runnable example configs. The default one
// is embedded in the binary; a test loads every one of them.
package examples

import "embed"

// Default is the config vigil runs when no -config.file is given.
//
//go:embed default.yaml
var Default []byte

// FS holds every example config.
//
//go:embed *.yaml
var FS embed.FS
