// Package components links every built-in source, processor and sink into
// the binary. Adding a component means adding its folder and one import
// line here.
package components

import (
	_ "github.com/vigilhq/vigil/processors"
	_ "github.com/vigilhq/vigil/sinks/loki"
	_ "github.com/vigilhq/vigil/sinks/stdout"
	_ "github.com/vigilhq/vigil/sources/containers"
	_ "github.com/vigilhq/vigil/sources/docker"
	_ "github.com/vigilhq/vigil/sources/file"
	_ "github.com/vigilhq/vigil/sources/host"
)

// Link is called by programs that need the components, so the import is
// explicit at the call site rather than a blank import.
func Link() {}
