package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

var versionCmd = &command{
	name:    "version",
	args:    "",
	group:   "Other",
	summary: "print walq's module version and the VCS revision it was built from",
	help: `Print the version of the walq module this binary was built from, the
version control revision and time of the source (when the Go toolchain
recorded them: builds from a clone do, 'go run' does not) and the Go
version. 'walq --version' does the same.`,
	example: `walq version
walq version --json`,
	run: runVersion,
}

// versionJSON is the output of version --json; fields the build did not
// record are empty.
type versionJSON struct {
	Module   string `json:"module"`
	Version  string `json:"version"`
	Revision string `json:"revision"`
	Time     string `json:"time"`
	Modified bool   `json:"modified"`
	Go       string `json:"go"`
}

func runVersion(a *app, c *command, args []string) error {
	fs := flagSet(c)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := a.parse(c, fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	v := buildVersion()
	if *asJSON {
		return writeJSON(a.stdout, v)
	}
	line := fmt.Sprintf("walq %s", v.Version)
	if v.Revision != "" {
		line += " (revision " + v.Revision
		if v.Time != "" {
			line += ", " + v.Time
		}
		if v.Modified {
			line += ", with uncommitted changes"
		}
		line += ")"
	}
	fmt.Fprintf(a.stdout, "%s %s\n", line, v.Go)
	return nil
}

// buildVersion reads the version the Go toolchain stamped into the binary.
// A module build (go install …@v1.2.3) has a version; a build from a clone
// has "(devel)" and, with VCS stamping, the revision.
func buildVersion() versionJSON {
	v := versionJSON{Module: "github.com/walq/walq", Version: "(unknown)", Go: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if bi.Main.Path != "" {
		v.Module = bi.Main.Path
	}
	if bi.Main.Version != "" {
		v.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}
