package pipeline

import "runtime/debug"

// Version is vigil's version, set at link time with
// -ldflags "-X github.com/vigilhq/vigil/pipeline.Version=v1.2.3". When it is
// not set, the module version from the build info is used.
var Version = ""

// VersionString is Version, or the build info's module version, or "dev".
func VersionString() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// UserAgent is what vigil sends in HTTP requests.
func UserAgent() string { return "vigil/" + VersionString() }
