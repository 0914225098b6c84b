// Package integration holds vigil's end-to-end tests. They build the real
// binary once (see TestMain), start it with configs rendered by the tests,
// feed it real files and check what arrives at a real Loki-protocol server
// (VictoriaLogs) or, for the failure modes a real server will not produce on
// demand, at a counting receiver that injects faults.
//
// Run them with `make test`, or `go test -race ./integration` after
// `make tools`. Without bin/victoria-logs the tests that need it skip,
// unless CI=true, where they fail. `go test -short` skips them all.
package integration
