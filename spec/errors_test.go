package spec

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestFriendlyErrors(t *testing.T) {
	tests := []struct {
		file    string // under testdata/spec/errors
		path    string // exact Path
		alt     string // another acceptable Path (compose-go walks services in map order)
		msg     string // substring of Msg
		hint    string // substring of Hint
		line    int    // 0: not checked
		column  int    // 0: not checked
		environ []string
	}{
		{file: "unknown-key.yaml", path: "services.web.restrat", msg: `unknown key "restrat"`, hint: `did you mean "restart"?`, line: 4, column: 5},
		{file: "unknown-key-nested.yaml", path: "services.web.deploy.resources.limits.memroy", msg: `unknown key "memroy"`, hint: `"memory"`, line: 7},
		{file: "unknown-key-top.yaml", path: "servics", msg: `unknown key "servics"`, hint: `"services"`, line: 1, column: 1},
		{file: "wrong-type.yaml", path: "services.web.ports", msg: "must be a list", hint: `"8080:80"`, line: 4},
		{file: "wrong-type-bool.yaml", path: "services.web.privileged", msg: "maybe", hint: "true or false", line: 4},
		{file: "yaml-syntax.yaml", msg: "invalid YAML: did not find expected key", hint: "indentation", line: 3, column: 4},
		{file: "yaml-tab.yaml", msg: "invalid YAML", hint: "tabs", line: 3},
		{file: "yaml-duplicate.yaml", msg: `key "image" appears twice`, hint: "remove one", line: 4},
		{file: "bad-port.yaml", path: "services.web.ports[1]", msg: `"80:80:80" is not a port mapping`, hint: "HOST:CONTAINER", line: 6, column: 9},
		{file: "bad-port-range.yaml", path: "services.web.ports[0]", msg: `"99999:80"`, hint: "1-65535", line: 5},
		{file: "bad-port-long.yaml", path: "services.web.ports[0]", msg: `published port "http"`, hint: "published:", line: 5},
		{file: "bad-memory.yaml", path: "services.web.mem_limit", msg: "invalid suffix", hint: `"512m"`, line: 4},
		{file: "tiny-memory.yaml", path: "services.web.mem_limit", msg: "below the 6 MiB minimum", hint: "512m", line: 4},
		{file: "bad-memory-deploy.yaml", path: "services.web.deploy.resources.limits.memory", msg: "lots", hint: "512m", line: 7},
		{file: "bad-cpus.yaml", path: "services.web.cpus", msg: `"fast" is not a number`, hint: "cpus: 0.5", line: 4},
		{file: "bad-cpus-deploy.yaml", path: "services.web.deploy.resources.limits.cpus", msg: `"fast" is not a number`, hint: "cpus", line: 7},
		{file: "required-variable.yaml", path: "services.web.image", msg: "required variable TAG is not set: set TAG to the image tag", hint: "TAG=value", line: 3},
		{file: "bad-interpolation.yaml", path: "services.web.image", msg: "invalid variable reference", hint: "${NAME:-default}", line: 3},
		{file: "depends-on-undefined.yaml", path: "services.web.depends_on[0]", msg: `undefined service "dbb"`, hint: `did you mean "db"?`, line: 4, column: 18},
		{file: "no-image.yaml", path: "services.web", msg: "neither an image nor a build", hint: "image:", line: 2},
		{file: "container-name-scale.yaml", path: "services.web.container_name", msg: "more than one replica (scale)", hint: "remove container_name", line: 4},
		{file: "container-name-replicas.yaml", path: "services.web.container_name", msg: "more than one replica (deploy.replicas)", hint: "deploy.replicas to 1", line: 4},
		{file: "missing-env-file.yaml", path: "services.web.env_file", msg: "missing.env does not exist", hint: "required: false", line: 4},
		{file: "missing-env-file-list.yaml", path: "services.web.env_file[0]", msg: "missing.env does not exist", hint: "required: false", line: 5},
		{file: "bad-restart.yaml", path: "services.web.restart", msg: `"sometimes" is not a restart policy`, hint: "unless-stopped", line: 4},
		{file: "undefined-network.yaml", path: "services.web.networks", msg: `network "front" is not declared`, hint: "networks:\n  front:", line: 4},
		{file: "undefined-volume.yaml", path: "services.web.volumes[0]", msg: `volume "data" is not declared`, hint: "volumes:\n  data:", line: 4},
		{file: "extends-cycle.yaml", path: "services.a.extends", alt: "services.b.extends", msg: " -> ", hint: "cycle"},
		{file: "depends-on-cycle.yaml", path: "services.a.depends_on", msg: "dependency cycle: a -> b -> c -> a", hint: "remove one", line: 4},
		{file: "depends-on-disabled.yaml", path: "services.web.depends_on[0]", msg: `"debug", which is disabled by profiles`, hint: "--profile debug", line: 4},
		{file: "invalid-service-name.yaml", path: "services.web app", msg: `"web app" is not a valid service name`, hint: `"web-app"`, line: 2},
		{file: "include-missing.yaml", path: "include[0]", msg: "nothere.yaml does not exist", hint: "relative to the directory", line: 2},
		{file: "extends-missing-file.yaml", path: "services.web.extends.file", msg: "nope.yaml does not exist", hint: "fix the path", line: 4},
		{file: "bad-port-target.yaml", path: "services.web.ports[0].target", msg: `"abc" is not a whole number`, hint: "port number", line: 5},
		{file: "bad-healthcheck.yaml", path: "services.web.healthcheck.test", msg: "must start with CMD", hint: `test: ["CMD"`, line: 5},
		{file: "empty.yaml", msg: "empty", hint: "services:"},
	}
	for _, tt := range tests {
		t.Run(strings.TrimSuffix(tt.file, ".yaml"), func(t *testing.T) {
			file := filepath.Join(fixture(t, "errors"), tt.file)
			env := tt.environ
			if env == nil {
				env = []string{}
			}
			p, err := Load(context.Background(), Options{Files: []string{file}, ProjectName: "errs", Environ: env})
			if err == nil {
				t.Fatalf("Load succeeded: %+v", p)
			}
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("err is %T, not *spec.Error: %v", err, err)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("errors.Is(err, ErrInvalid) = false")
			}
			if se.File != file {
				t.Errorf("File = %q, want %q", se.File, file)
			}
			if se.Path != tt.path && (tt.alt == "" || se.Path != tt.alt) {
				t.Errorf("Path = %q, want %q", se.Path, tt.path)
			}
			if !strings.Contains(se.Msg, tt.msg) {
				t.Errorf("Msg = %q, want it to contain %q", se.Msg, tt.msg)
			}
			if !strings.Contains(se.Hint, tt.hint) {
				t.Errorf("Hint = %q, want it to contain %q", se.Hint, tt.hint)
			}
			if tt.line != 0 && se.Line != tt.line {
				t.Errorf("Line = %d, want %d", se.Line, tt.line)
			}
			if tt.column != 0 && se.Column != tt.column {
				t.Errorf("Column = %d, want %d", se.Column, tt.column)
			}
			// The rendered message names the file, the key and the fix.
			s := err.Error()
			if !strings.Contains(s, file) || (tt.path != "" && !strings.Contains(s, se.Path)) || !strings.Contains(s, "hint: ") {
				t.Errorf("Error() = %q", s)
			}
			// Render reports the same error.
			if _, rerr := Render(context.Background(), Options{Files: []string{file}, ProjectName: "errs", Environ: env}, "yaml"); !errors.As(rerr, &se) {
				t.Errorf("Render: %v", rerr)
			}
		})
	}
}

func TestFriendlyErrorsOptions(t *testing.T) {
	ok := filepath.Join(fixture(t, "profiles"), "compose.yaml")
	tests := []struct {
		name string
		opt  Options
		path string
		msg  string
		hint string
	}{
		{"bad project name", Options{Files: []string{ok}, ProjectName: "My App"}, "name", `"My App" is not a valid project name`, `"myapp"`},
		{"bad COMPOSE_PROJECT_NAME", Options{Files: []string{ok}, Environ: []string{"COMPOSE_PROJECT_NAME=Bad Name!"}}, "name", "not a valid project name", "lowercase"},
		{"missing --env-file", Options{Files: []string{ok}, EnvFiles: []string{"/nonexistent/x.env"}}, "--env-file", "does not exist", "--env-file"},
		{"missing --project-directory", Options{Files: []string{ok}, ProjectDir: "/nonexistent/dir"}, "--project-directory", "not a directory", "existing directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.opt.Environ == nil {
				tt.opt.Environ = []string{}
			}
			_, err := Load(context.Background(), tt.opt)
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("err = %v (%T), want *spec.Error", err, err)
			}
			if se.Path != tt.path || !strings.Contains(se.Msg, tt.msg) || !strings.Contains(se.Hint, tt.hint) {
				t.Errorf("got Path=%q Msg=%q Hint=%q", se.Path, se.Msg, se.Hint)
			}
		})
	}
}

func TestClosest(t *testing.T) {
	keys := validKeys([]string{"services", "web"})
	for _, k := range []string{"image", "restart", "ports", "environment", "x-never"} {
		if k == "x-never" {
			continue
		}
		found := false
		for _, v := range keys {
			found = found || v == k
		}
		if !found {
			t.Errorf("validKeys(services.web) lacks %q", k)
		}
	}
	tests := map[string]string{
		"restrat":     "restart",
		"imgae":       "image",
		"enviroment":  "environment",
		"port":        "ports",
		"depend_on":   "depends_on",
		"healtcheck":  "healthcheck",
		"zzzzzzzzzzz": "",
	}
	for in, want := range tests {
		if got := closest(in, keys); got != want {
			t.Errorf("closest(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestValidKeysNested(t *testing.T) {
	tests := []struct {
		path []string
		key  string
	}{
		{[]string{"networks", "front"}, "driver"},
		{[]string{"volumes", "data"}, "external"},
		{[]string{"services", "web", "build"}, "dockerfile"},
		{[]string{"services", "web", "healthcheck"}, "interval"},
		{[]string{"services", "web", "ports", "0"}, "published"},
		{[]string{"services", "web", "deploy", "resources", "limits"}, "memory"},
		{nil, "services"},
	}
	for _, tt := range tests {
		keys := validKeys(tt.path)
		found := false
		for _, k := range keys {
			found = found || k == tt.key
		}
		if !found {
			t.Errorf("validKeys(%v) = %v, lacks %q", tt.path, keys, tt.key)
		}
	}
}
