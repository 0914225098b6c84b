// Package deploy holds the checks of the deployment in deploy/: the compose
// stack (compose/), the systemd unit (systemd/) and the image (docker/).
//
// The tests run the real tools on the real files: docker-compose config,
// promtool check config / check rules / test rules, amtool check-config and
// config routes test, systemd-analyze verify, vigil validate, docker build.
// A live test starts Debian's Prometheus and Alertmanager with the deploy
// configs (addresses and paths moved to the loopback and a temporary
// directory) and a running vigil, then stops vigil and waits for HostDown
// at Alertmanager. The Grafana dashboards are checked by parsing: valid JSON,
// every PromQL expression through promtool, every metric name against what
// vigil serves and testdata/stack-metrics.txt. Loki cannot be installed on
// the test machines: loki.yaml is checked key by key against the keys of
// Loki 3's configuration reference listed in lokiKeys.
//
// Without a tool the test that needs it skips and names the Debian package,
// unless CI=true, where it fails. `go test -short` skips the tests that
// start processes.
package deploy
