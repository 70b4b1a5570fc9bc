package spec

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fixture returns the absolute path of testdata/spec/<name>.
func fixture(t testing.TB, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "testdata", "spec", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// load loads with an empty environment unless env is given, so the host's COMPOSE_* never leak in.
func load(t *testing.T, opt Options) *Project {
	t.Helper()
	if opt.Environ == nil {
		opt.Environ = []string{}
	}
	p, err := Load(context.Background(), opt)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return p
}

func mustService(t *testing.T, p *Project, name string) Service {
	t.Helper()
	s, ok := p.Service(name)
	if !ok {
		t.Fatalf("service %q not loaded; have %v", name, p.ServiceNames())
	}
	return s
}

func TestLoadBasic(t *testing.T) {
	dir := fixture(t, "basic")
	p := load(t, Options{WorkingDir: dir})

	if p.Name != "basic" || p.WorkingDir != dir {
		t.Errorf("name/dir = %q %q", p.Name, p.WorkingDir)
	}
	if diff := cmp.Diff([]string{filepath.Join(dir, "compose.yaml")}, p.ComposeFiles); diff != "" {
		t.Errorf("ComposeFiles (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"cache", "db", "web", "worker"}, p.ServiceNames()); diff != "" {
		t.Errorf("services (-want +got):\n%s", diff)
	}

	web := mustService(t, p, "web")
	wantPorts := []Port{
		{Published: "8080", Target: 80, Protocol: "tcp", Mode: "ingress"},
		{HostIP: "127.0.0.1", Published: "9000", Target: 9000, Protocol: "udp", Mode: "ingress"},
		{HostIP: "127.0.0.1", Published: "9001", Target: 9001, Protocol: "udp", Mode: "ingress"},
		{Published: "8443", Target: 443, Protocol: "tcp", Mode: "ingress"},
		{Target: 3000, Protocol: "tcp", Mode: "ingress"},
	}
	if diff := cmp.Diff(wantPorts, web.Ports); diff != "" {
		t.Errorf("ports (-want +got):\n%s", diff)
	}
	wantMounts := []Mount{
		{Type: MountVolume, Source: "data", Target: "/var/lib/data"},
		{Type: MountBind, Source: filepath.Join(dir, "html"), Target: "/usr/share/nginx/html", ReadOnly: true, CreateHostPath: true},
		{Type: MountTmpfs, Target: "/tmp/cache", TmpfsSize: 64 << 20},
		{Type: MountVolume, Target: "/anon"},
	}
	if diff := cmp.Diff(wantMounts, web.Volumes); diff != "" {
		t.Errorf("volumes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"MODE": "production", "EMPTY": ""}, web.Environment); diff != "" {
		t.Errorf("environment (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"nginx", "-g", "daemon off;"}, web.Command); diff != "" {
		t.Errorf("command (-want +got):\n%s", diff)
	}
	if web.Entrypoint != nil {
		t.Errorf("entrypoint = %#v, want nil (image default)", web.Entrypoint)
	}
	if web.Resources.MemLimit != 256<<20 || web.Resources.CPUs != 0.5 {
		t.Errorf("resources = %+v", web.Resources)
	}
	if web.Restart != "on-failure:3" || web.Scale != 1 {
		t.Errorf("restart/scale = %q %d", web.Restart, web.Scale)
	}
	if web.StopGracePeriod == nil || *web.StopGracePeriod != 30*time.Second {
		t.Errorf("stop_grace_period = %v", web.StopGracePeriod)
	}
	wantHC := &Healthcheck{Test: []string{"CMD", "curl", "-f", "http://localhost"}, Interval: 10 * time.Second, Timeout: 2 * time.Second, Retries: 3}
	if diff := cmp.Diff(wantHC, web.Healthcheck); diff != "" {
		t.Errorf("healthcheck (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]Dependency{"db": {Condition: ConditionHealthy, Required: true}}, web.DependsOn); diff != "" {
		t.Errorf("depends_on (-want +got):\n%s", diff)
	}
	wantNets := map[string]ServiceNetwork{"front": {Aliases: []string{"www"}}, "back": {Aliases: []string{}}}
	if diff := cmp.Diff(wantNets, web.Networks); diff != "" {
		t.Errorf("networks (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"host.example:10.0.0.1"}, web.ExtraHosts); diff != "" {
		t.Errorf("extra_hosts (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]Ulimit{"nofile": {Soft: 1024, Hard: 2048}, "nproc": {Soft: 512, Hard: 512}}, web.Ulimits); diff != "" {
		t.Errorf("ulimits (-want +got):\n%s", diff)
	}
	wantExt := map[string]any{"x-custom": map[string]any{"owner": "team-a", "list": []any{1, 2}}}
	if diff := cmp.Diff(wantExt, web.Extensions); diff != "" {
		t.Errorf("extensions (-want +got):\n%s", diff)
	}

	db := mustService(t, p, "db")
	wantRes := Resources{MemLimit: 1 << 30, MemReservation: 512 << 20, CPUs: 1.5, PidsLimit: 100}
	if diff := cmp.Diff(wantRes, db.Resources); diff != "" {
		t.Errorf("db resources (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"CMD-SHELL", "pg_isready"}, db.Healthcheck.Test); diff != "" {
		t.Errorf("db healthcheck (-want +got):\n%s", diff)
	}

	worker := mustService(t, p, "worker")
	if worker.Scale != 3 || worker.Build == nil || worker.Build.Context != filepath.Join(dir, "worker") ||
		worker.Build.Dockerfile != "Dockerfile" || worker.Build.Args["VERSION"] != "2" {
		t.Errorf("worker = scale %d build %+v", worker.Scale, worker.Build)
	}
	if worker.ImageName(p.Name) != "basic-worker" {
		t.Errorf("worker image = %q", worker.ImageName(p.Name))
	}
	if worker.Init == nil || !*worker.Init {
		t.Errorf("worker init = %v", worker.Init)
	}
	if diff := cmp.Diff(map[string]ServiceNetwork{"default": {Aliases: []string{}}}, worker.Networks); diff != "" {
		t.Errorf("worker joins the default network (-want +got):\n%s", diff)
	}

	cache := mustService(t, p, "cache")
	if cache.NetworkMode != "host" || len(cache.Networks) != 0 {
		t.Errorf("cache network_mode=%q networks=%v", cache.NetworkMode, cache.Networks)
	}

	// Networks: actual names; "default" because worker uses it; "unused" dropped like Compose.
	wantNetNames := map[string]string{"front": "basic_front", "back": "custom-back", "default": "basic_default"}
	if len(p.Networks) != len(wantNetNames) {
		t.Errorf("networks = %v", p.Networks)
	}
	for k, name := range wantNetNames {
		if p.Networks[k].Name != name {
			t.Errorf("network %s name = %q, want %q", k, p.Networks[k].Name, name)
		}
	}
	if diff := cmp.Diff(map[string]Volume{"data": {Name: "basic_data", DriverOpts: map[string]string{}, Labels: map[string]string{}}}, p.Volumes); diff != "" {
		t.Errorf("volumes (-want +got):\n%s", diff)
	}

	// Every service must be JSON-encodable: planner.ServiceHash marshals it.
	for _, s := range p.Services {
		if _, err := json.Marshal(s); err != nil {
			t.Errorf("json.Marshal(%s): %v", s.Name, err)
		}
	}
}

func TestLoadDotEnvAndInterpolation(t *testing.T) {
	dir := fixture(t, "dotenv")
	p := load(t, Options{WorkingDir: dir, Environ: []string{"PASSTHROUGH=from-os"}})
	app := mustService(t, p, "app")
	if app.Image != "registry.example/app:1.2.3" {
		t.Errorf("image = %q", app.Image)
	}
	if len(app.Ports) != 1 || app.Ports[0].Published != "8081" {
		t.Errorf("ports = %+v", app.Ports)
	}
	want := map[string]string{
		"DEFAULTED":   "fallback",
		"ALT":         "has-tag",
		"REQUIRED":    "1.2.3",
		"LITERAL":     "$HOME",
		"FROM_DOTENV": "yes",
		"PASSTHROUGH": "from-os",
		// NOT_SET_ANYWHERE has no value anywhere: dropped, like Compose.
	}
	if diff := cmp.Diff(want, app.Environment); diff != "" {
		t.Errorf("environment (-want +got):\n%s", diff)
	}

	t.Run("os environment wins over .env", func(t *testing.T) {
		p := load(t, Options{WorkingDir: dir, Environ: []string{"TAG=9.9"}})
		if s := mustService(t, p, "app"); s.Image != "registry.example/app:9.9" {
			t.Errorf("image = %q", s.Image)
		}
	})
	t.Run("--env-file replaces .env", func(t *testing.T) {
		alt := filepath.Join(t.TempDir(), "alt.env")
		if err := os.WriteFile(alt, []byte("TAG=alt\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		p := load(t, Options{WorkingDir: dir, EnvFiles: []string{alt}})
		s := mustService(t, p, "app")
		if s.Image != "registry.example/app:alt" || s.Ports[0].Published != "80" {
			t.Errorf("image = %q ports = %+v", s.Image, s.Ports)
		}
	})
	t.Run("COMPOSE_DISABLE_ENV_FILE", func(t *testing.T) {
		_, err := Load(context.Background(), Options{WorkingDir: dir, Environ: []string{"COMPOSE_DISABLE_ENV_FILE=1"}})
		var se *Error
		if !errors.As(err, &se) || !strings.Contains(se.Msg, "TAG") {
			t.Errorf("want required-variable error for TAG, got %v", err)
		}
	})
}

func TestLoadEnvFile(t *testing.T) {
	p := load(t, Options{WorkingDir: fixture(t, "envfile")})
	app := mustService(t, p, "app")
	want := map[string]string{"A": "from-common", "B": "from-override", "C": "from-environment", "D": "from-environment"}
	if diff := cmp.Diff(want, app.Environment); diff != "" {
		t.Errorf("environment (-want +got):\n%s", diff)
	}
	if len(app.EnvFiles) != 3 || !filepath.IsAbs(app.EnvFiles[0]) {
		t.Errorf("env files = %v", app.EnvFiles)
	}
}

func TestLoadProfiles(t *testing.T) {
	dir := fixture(t, "profiles")
	tests := []struct {
		name     string
		opt      Options
		enabled  []string
		disabled []string
	}{
		{"none", Options{}, []string{"app"}, []string{"debug", "metrics"}},
		{"flag", Options{Profiles: []string{"debug"}}, []string{"app", "debug", "metrics"}, nil},
		{"COMPOSE_PROFILES", Options{Environ: []string{"COMPOSE_PROFILES=monitoring"}}, []string{"app", "metrics"}, []string{"debug"}},
		{"BERTH_PROFILES wins", Options{Environ: []string{"COMPOSE_PROFILES=monitoring", "BERTH_PROFILES=debug"}}, []string{"app", "debug", "metrics"}, nil},
		{"flag wins over env", Options{Profiles: []string{"monitoring"}, Environ: []string{"COMPOSE_PROFILES=debug"}}, []string{"app", "metrics"}, []string{"debug"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opt.WorkingDir = dir
			p := load(t, tt.opt)
			if diff := cmp.Diff(tt.enabled, p.ServiceNames()); diff != "" {
				t.Errorf("enabled (-want +got):\n%s", diff)
			}
			var disabled []string
			for _, s := range p.DisabledServices {
				disabled = append(disabled, s.Name)
			}
			if diff := cmp.Diff(tt.disabled, disabled); diff != "" {
				t.Errorf("disabled (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{"debug", "monitoring"}, p.Profiles); diff != "" {
				t.Errorf("profiles (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadExtends(t *testing.T) {
	p := load(t, Options{WorkingDir: fixture(t, "extends")})
	app := mustService(t, p, "app")
	if app.Image != "busybox" {
		t.Errorf("app image = %q", app.Image)
	}
	if diff := cmp.Diff(map[string]string{"LEVEL": "app", "KEEP": "kept"}, app.Environment); diff != "" {
		t.Errorf("app environment (-want +got):\n%s", diff)
	}
	if app.Labels["from"] != "base" {
		t.Errorf("app labels = %v", app.Labels)
	}
	tool := mustService(t, p, "tool")
	if tool.Image != "alpine" || tool.WorkingDir != "/srv" || !cmp.Equal(tool.Command, []string{"sh"}) {
		t.Errorf("tool = %q %q %v", tool.Image, tool.WorkingDir, tool.Command)
	}
}

func TestLoadInclude(t *testing.T) {
	dir := fixture(t, "include")
	p := load(t, Options{WorkingDir: dir})
	if diff := cmp.Diff([]string{"app", "db"}, p.ServiceNames()); diff != "" {
		t.Errorf("services (-want +got):\n%s", diff)
	}
	if v, ok := p.Volumes["dbdata"]; !ok || v.Name != "include_dbdata" {
		t.Errorf("volumes = %+v", p.Volumes)
	}
}

func TestLoadMultipleFilesMerge(t *testing.T) {
	dir := fixture(t, "merge")
	p := load(t, Options{WorkingDir: dir, Files: []string{"compose.yaml", "compose.prod.yaml"}})
	app := mustService(t, p, "app")
	if app.Image != "app:prod" {
		t.Errorf("image = %q, want the later file's", app.Image)
	}
	if diff := cmp.Diff(map[string]string{"MODE": "prod", "KEEP": "1"}, app.Environment); diff != "" {
		t.Errorf("environment (-want +got):\n%s", diff)
	}
	if len(app.Ports) != 1 {
		t.Errorf("ports = %+v", app.Ports)
	}
	if diff := cmp.Diff([]string{"app", "extra"}, p.ServiceNames()); diff != "" {
		t.Errorf("services (-want +got):\n%s", diff)
	}
	if len(p.ComposeFiles) != 2 || p.ComposeFiles[1] != filepath.Join(dir, "compose.prod.yaml") {
		t.Errorf("compose files = %v", p.ComposeFiles)
	}
}

func TestLoadDiscoveryUpward(t *testing.T) {
	dir := fixture(t, "discovery")
	p := load(t, Options{WorkingDir: filepath.Join(dir, "sub", "deeper")})
	if p.Name != "discovery" || p.WorkingDir != dir {
		t.Errorf("name %q dir %q", p.Name, p.WorkingDir)
	}
	want := []string{filepath.Join(dir, "compose.yaml"), filepath.Join(dir, "compose.override.yaml")}
	if diff := cmp.Diff(want, p.ComposeFiles); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	if s := mustService(t, p, "app"); s.Environment["OVERRIDDEN"] != "yes" {
		t.Errorf("override file not merged: %v", s.Environment)
	}
}

func TestLoadNotFound(t *testing.T) {
	dir := t.TempDir()
	_, err := Load(context.Background(), Options{WorkingDir: dir, Environ: []string{}})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
	var se *Error
	if !errors.As(err, &se) || !strings.Contains(se.Msg, dir) || !strings.Contains(se.Msg, "compose.yaml") || se.Hint == "" {
		t.Errorf("error does not say where berth looked: %v", err)
	}

	_, err = Load(context.Background(), Options{WorkingDir: dir, Files: []string{"nope.yaml"}, Environ: []string{}})
	if !errors.As(err, &se) || se.File != filepath.Join(dir, "nope.yaml") || !errors.Is(err, ErrNotFound) {
		t.Errorf("missing -f file: %v", err)
	}
}

func TestLoadComposeAndBerthVariables(t *testing.T) {
	dir := fixture(t, "berthenv")
	tests := []struct {
		name     string
		opt      Options
		project  string
		services []string
	}{
		{"defaults", Options{}, "berthenv", []string{"app"}},
		{"COMPOSE_PROJECT_NAME", Options{Environ: []string{"COMPOSE_PROJECT_NAME=fromenv"}}, "fromenv", []string{"app"}},
		{"BERTH_PROJECT_NAME wins", Options{Environ: []string{"COMPOSE_PROJECT_NAME=fromenv", "BERTH_PROJECT_NAME=berthname"}}, "berthname", []string{"app"}},
		{"-p wins", Options{ProjectName: "flag", Environ: []string{"BERTH_PROJECT_NAME=berthname"}}, "flag", []string{"app"}},
		{"COMPOSE_FILE", Options{Environ: []string{"COMPOSE_FILE=other.yaml"}}, "berthenv", []string{"other"}},
		{"COMPOSE_FILE list", Options{Environ: []string{"COMPOSE_FILE=compose.yaml:other.yaml"}}, "berthenv", []string{"app", "other"}},
		{"COMPOSE_PATH_SEPARATOR", Options{Environ: []string{"COMPOSE_FILE=compose.yaml;other.yaml", "COMPOSE_PATH_SEPARATOR=;"}}, "berthenv", []string{"app", "other"}},
		{"BERTH_FILE wins", Options{Environ: []string{"COMPOSE_FILE=compose.yaml", "BERTH_FILE=other.yaml"}}, "berthenv", []string{"other"}},
		{"-f wins", Options{Files: []string{"compose.yaml"}, Environ: []string{"BERTH_FILE=other.yaml"}}, "berthenv", []string{"app"}},
		{"COMPOSE_PROFILES", Options{Environ: []string{"COMPOSE_PROFILES=tools"}}, "berthenv", []string{"app", "tools"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opt.WorkingDir = dir
			p := load(t, tt.opt)
			if p.Name != tt.project {
				t.Errorf("project = %q, want %q", p.Name, tt.project)
			}
			if diff := cmp.Diff(tt.services, p.ServiceNames()); diff != "" {
				t.Errorf("services (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadDotEnvSetsComposeVariables(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "app.yaml"), "services:\n  app:\n    image: busybox\n")
	write(t, filepath.Join(dir, ".env"), "COMPOSE_FILE=app.yaml\nBERTH_PROJECT_NAME=dotenvname\n")
	p := load(t, Options{WorkingDir: dir})
	if p.Name != "dotenvname" || len(p.Services) != 1 {
		t.Errorf("project %q services %v", p.Name, p.ServiceNames())
	}
}

func TestLoadProjectDirectory(t *testing.T) {
	dir := t.TempDir()
	proj := filepath.Join(dir, "proj")
	write(t, filepath.Join(dir, "files", "compose.yaml"), "services:\n  app:\n    image: busybox:${TAG}\n    volumes: [./data:/data]\n")
	write(t, filepath.Join(proj, ".env"), "TAG=fromprojdir\n")
	p := load(t, Options{WorkingDir: dir, ProjectDir: "proj", Files: []string{"files/compose.yaml"}})
	app := mustService(t, p, "app")
	if p.WorkingDir != proj || p.Name != "proj" || app.Image != "busybox:fromprojdir" || app.Volumes[0].Source != filepath.Join(proj, "data") {
		t.Errorf("dir %q name %q image %q volume %q", p.WorkingDir, p.Name, app.Image, app.Volumes[0].Source)
	}
}

func TestRender(t *testing.T) {
	opt := Options{WorkingDir: fixture(t, "dotenv"), Environ: []string{}}
	y1, err := Render(context.Background(), opt, "yaml")
	if err != nil {
		t.Fatal(err)
	}
	y2, err := Render(context.Background(), opt, "yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(y1, y2) {
		t.Errorf("yaml output is not stable")
	}
	for _, want := range []string{"name: dotenv\n", "services:\n  app:\n", "image: registry.example/app:1.2.3", "LITERAL: $$HOME", "published: \"8081\"", "networks:\n  default:\n    name: dotenv_default"} {
		if !bytes.Contains(y1, []byte(want)) {
			t.Errorf("yaml lacks %q:\n%s", want, y1)
		}
	}
	j, err := Render(context.Background(), opt, "json")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(j, &doc); err != nil {
		t.Fatalf("json output: %v\n%s", err, j)
	}
	if doc["name"] != "dotenv" {
		t.Errorf("json name = %v", doc["name"])
	}
	// env_file entries are merged into environment and not printed, as docker compose config does.
	y, err := Render(context.Background(), Options{WorkingDir: fixture(t, "envfile"), Environ: []string{}}, "yaml")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(y, []byte("env_file")) || !bytes.Contains(y, []byte("A: from-common")) {
		t.Errorf("env_file not resolved:\n%s", y)
	}
	if _, err := Render(context.Background(), opt, "toml"); err == nil {
		t.Errorf("unsupported format accepted")
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadDisabledServices(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "compose.yaml"), `services:
  app:
    image: busybox
  debug:
    image: busybox
    profiles: [debug]
    env_file: debug.env
    environment:
      B: from-environment
  broken:
    image: busybox
    profiles: [never]
    env_file: missing.env
`)
	write(t, filepath.Join(dir, "debug.env"), "A=from-file\nB=from-file\n")
	p := load(t, Options{WorkingDir: dir})
	if diff := cmp.Diff([]string{"app"}, p.ServiceNames()); diff != "" {
		t.Errorf("enabled (-want +got):\n%s", diff)
	}
	if len(p.DisabledServices) != 2 || p.DisabledServices[1].Name != "debug" {
		t.Fatalf("disabled = %+v", p.DisabledServices)
	}
	// A disabled service's env_file is resolved too; a missing one is no error while disabled.
	if diff := cmp.Diff(map[string]string{"A": "from-file", "B": "from-environment"}, p.DisabledServices[1].Environment); diff != "" {
		t.Errorf("debug environment (-want +got):\n%s", diff)
	}
	_, err := Load(context.Background(), Options{WorkingDir: dir, Profiles: []string{"never"}, Environ: []string{}})
	var se *Error
	if !errors.As(err, &se) || se.Path != "services.broken.env_file" {
		t.Errorf("enabling the broken service: %v", err)
	}
}

func TestDiscoverFileNames(t *testing.T) {
	tests := []struct {
		files []string
		want  []string
	}{
		{[]string{"docker-compose.yml"}, []string{"docker-compose.yml"}},
		{[]string{"docker-compose.yaml"}, []string{"docker-compose.yaml"}},
		{[]string{"compose.yml", "docker-compose.yml"}, []string{"compose.yml"}},
		{[]string{"compose.yaml", "compose.yml"}, []string{"compose.yaml"}},
		{[]string{"docker-compose.yml", "docker-compose.override.yml"}, []string{"docker-compose.yml", "docker-compose.override.yml"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.files, "+"), func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range tt.files {
				write(t, filepath.Join(dir, f), "services:\n  app:\n    image: busybox\n")
			}
			got, err := discover(dir)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, f := range tt.want {
				want = append(want, filepath.Join(dir, f))
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("discover (-want +got):\n%s", diff)
			}
		})
	}
}
