//go:build linux && integration

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/engine"
	"github.com/berth-dev/berth/netns"
	"github.com/berth-dev/berth/storage"
)

// End-to-end tests of the engine's convergence: failed creates roll back, interrupted ones
// are swept, port ranges spread replicas. They reuse wire_e2e's harness (newWireEnv).

// writeCompose replaces the test project's compose.yaml.
func (e *wireEnv) writeCompose(yaml string) {
	e.t.Helper()
	if err := os.WriteFile(filepath.Join(e.dir, "compose.yaml"), []byte(yaml), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// wireFreePorts returns n consecutive free loopback TCP ports.
func wireFreePorts(t *testing.T, n int) int {
	t.Helper()
	for try := 0; try < 50; try++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		base := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if base+n > 65000 {
			continue
		}
		ok := true
		for p := base; p < base+n; p++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free port range")
	return 0
}

// leftovers lists what containers left under the test's roots: mounts, sandboxes, endpoints.
func (e *wireEnv) leftovers() (mounts, sandboxes, endpoints []string) {
	data, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := f[4]
		if (strings.HasPrefix(mp, e.root+"/") || strings.HasPrefix(mp, e.runRoot+"/")) && mp != filepath.Join(e.runRoot, "netns") {
			mounts = append(mounts, mp)
		}
	}
	ents, _ := os.ReadDir(filepath.Join(e.runRoot, "netns"))
	for _, d := range ents {
		sandboxes = append(sandboxes, d.Name())
	}
	books, _ := filepath.Glob(filepath.Join(e.runRoot, "ipam", "*.json"))
	for _, b := range books {
		var st struct {
			Endpoints map[string]json.RawMessage `json:"endpoints"`
		}
		raw, _ := os.ReadFile(b)
		_ = json.Unmarshal(raw, &st)
		for id := range st.Endpoints {
			endpoints = append(endpoints, filepath.Base(b)+":"+id)
		}
	}
	return mounts, sandboxes, endpoints
}

func TestE2EFailedCreateRollsBack(t *testing.T) {
	e := newWireEnv(t, "ports")
	port := wireFreePorts(t, 1)
	e.env = []string{fmt.Sprintf("E2E_PORT=%d", port)}
	// Replicas 2 and 3 cannot have the fixed port: they fail, and leave nothing behind.
	out, err := e.berth("up", "-d", "--scale", "web=3")
	if err == nil || !strings.Contains(out, "already allocated") {
		t.Fatalf("scale with a fixed port: err = %v\n%s", err, out)
	}
	if strings.Contains(out, "roll back") {
		t.Errorf("rollback reported a failure:\n%s", out)
	}
	// One replica got the port; the others left nothing: one of each, and DNS has one web.
	mounts, sandboxes, endpoints := e.leftovers()
	if len(sandboxes) != 1 || len(endpoints) != 1 || len(mounts) != 2 {
		t.Errorf("after failed scale: mounts %v sandboxes %v endpoints %v", mounts, sandboxes, endpoints)
	}
	e.mustBerth("down", "-v", "-t", "0")
	mounts, sandboxes, endpoints = e.leftovers()
	if len(mounts)+len(sandboxes)+len(endpoints) > 0 {
		t.Errorf("after down: mounts %v sandboxes %v endpoints %v", mounts, sandboxes, endpoints)
	}
	if e.netnsMounted() {
		t.Errorf("after down: %s/netns is still mounted", e.runRoot)
	}
}

// netnsMounted reports whether the sandboxes' directory is still a mount point.
func (e *wireEnv) netnsMounted() bool {
	data, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == filepath.Join(e.runRoot, "netns") {
			return true
		}
	}
	return false
}

func TestE2ESweepInterruptedCreate(t *testing.T) {
	e := newWireEnv(t, "ports")
	port := wireFreePorts(t, 1)
	e.env = []string{fmt.Sprintf("E2E_PORT=%d", port)}
	e.mustBerth("up", "-d")
	// A berth killed in the middle of a create: journal entry, writable layer, sandbox and an
	// endpoint (DNS record) for a container the runtime never got.
	ctx := context.Background()
	id := engine.NewID()
	jdir := filepath.Join(e.runRoot, "creating", "e2eports")
	if err := os.MkdirAll(jdir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(jdir, id), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := storage.Open(filepath.Join(e.root, "storage"))
	if err != nil {
		t.Fatal(err)
	}
	img, err := s.Resolve(ctx, "bb:latest")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Mount(ctx, id, img.ID); err != nil {
		t.Fatal(err)
	}
	s.Close()
	m, err := netns.New(netns.Config{Root: filepath.Join(e.root, "networks"), RunRoot: e.runRoot, DNSBinary: []string{e.bin, "__dns"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.CreateSandbox(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Attach(ctx, id, "e2eports_default", netns.EndpointConfig{Aliases: []string{"web"}, ContainerName: "e2eports-web-9"}); err != nil {
		t.Fatal(err)
	}
	_, sandboxes, endpoints := e.leftovers()
	if len(sandboxes) != 2 || len(endpoints) != 2 {
		t.Fatalf("setup: sandboxes %v endpoints %v", sandboxes, endpoints)
	}
	// down converges: no error about active endpoints, nothing left.
	e.mustBerth("down", "-v", "-t", "0")
	mounts, sandboxes, endpoints := e.leftovers()
	if len(mounts)+len(sandboxes)+len(endpoints) > 0 {
		t.Errorf("after down: mounts %v sandboxes %v endpoints %v", mounts, sandboxes, endpoints)
	}
	if ents, _ := os.ReadDir(jdir); len(ents) != 0 {
		t.Errorf("journal entries left: %v", ents)
	}
	if _, err := os.Stat(filepath.Join(e.root, "storage", "mounts", id)); !os.IsNotExist(err) {
		t.Errorf("writable layer of the interrupted create left: %v", err)
	}
}

func TestE2EPortRangeReplicas(t *testing.T) {
	e := newWireEnv(t, "ports")
	base := wireFreePorts(t, 3)
	e.writeCompose(fmt.Sprintf(`name: e2eports
services:
  web:
    image: bb:latest
    command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"]
    ports:
      - "127.0.0.1:%d-%d:8080"
`, base, base+2))
	e.mustBerth("up", "-d", "--scale", "web=3")
	hosts := map[string]bool{}
	for n := 1; n <= 3; n++ {
		want := fmt.Sprintf("127.0.0.1:%d", base+n-1)
		if got := strings.TrimSpace(e.mustBerth("port", "--index", fmt.Sprint(n), "web", "8080")); got != want {
			t.Errorf("replica %d publishes %s, want %s", n, got, want)
		}
		url := fmt.Sprintf("http://%s/index.html", want)
		e.eventually(15*time.Second, func() string {
			c := http.Client{Timeout: time.Second}
			resp, err := c.Get(url)
			if err != nil {
				return "GET " + url + ": " + err.Error()
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			hosts[strings.TrimSpace(string(b))] = true
			return ""
		})
	}
	if len(hosts) != 3 {
		t.Errorf("the three ports reach %d distinct replicas: %v", len(hosts), hosts)
	}
	// A fourth replica finds no free port: a clear error, and nothing left of it.
	out, err := e.berth("up", "-d", "--scale", "web=4")
	if err == nil || !strings.Contains(out, "service web") || !strings.Contains(out, fmt.Sprintf("%d-%d", base, base+2)) {
		t.Errorf("fourth replica: err = %v\n%s", err, out)
	}
	if _, sandboxes, endpoints := e.leftovers(); len(sandboxes) != 3 || len(endpoints) != 3 {
		t.Errorf("after the failed fourth replica: sandboxes %v endpoints %v", sandboxes, endpoints)
	}
}

// up --build whose build is a cache hit (the same image ID) keeps the containers.
func TestE2EBuildCacheHitKeepsContainer(t *testing.T) {
	e := newWireEnv(t, "build")
	e.writeCompose(`name: e2ebuild
services:
  app:
    build:
      context: ./app
    command: ["sh", "-c", "cat /greeting.txt; exec sleep 3600"]
    stop_grace_period: 1s
`)
	e.mustBerth("up", "-d")
	first := wireIDs(e.ps())
	out := e.mustBerth("up", "-d", "--build")
	if again := wireIDs(e.ps()); again["e2ebuild-app-1"] == "" || again["e2ebuild-app-1"] != first["e2ebuild-app-1"] {
		t.Errorf("up --build with an unchanged build recreated the container: %v -> %v\n%s", first, again, out)
	}
	// A changed build context does recreate.
	if err := os.WriteFile(filepath.Join(e.dir, "app", "greeting.txt"), []byte("changed greeting\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out = e.mustBerth("up", "-d", "--build")
	if again := wireIDs(e.ps()); again["e2ebuild-app-1"] == "" || again["e2ebuild-app-1"] == first["e2ebuild-app-1"] {
		t.Errorf("up --build with a changed build kept the container: %v -> %v\n%s", first, again, out)
	}
}

// run -d --rm removes the container, and everything made for it, when it exits.
func TestE2ERunDetachedRemove(t *testing.T) {
	e := newWireEnv(t, "scale")
	e.writeCompose(`name: e2erm
services:
  web:
    image: bb:latest
    command: ["sleep", "3600"]
    stop_grace_period: 1s
  job:
    image: bb:latest
    profiles: [manual]
    command: ["sh", "-c", "sleep 1; echo done"]
    volumes:
      - /scratch
`)
	e.mustBerth("up", "-d")
	out := e.mustBerth("run", "-d", "--rm", "job")
	name := strings.TrimSpace(out)
	if !strings.HasPrefix(name, "e2erm-job-run-") {
		t.Fatalf("run -d printed %q", out)
	}
	e.eventually(20*time.Second, func() string {
		if ps := e.mustBerth("ps", "-a"); strings.Contains(ps, name) {
			return "the container is still there:\n" + ps
		}
		// web's remain.
		mounts, sandboxes, endpoints := e.leftovers()
		if len(mounts) != 2 || len(sandboxes) != 1 || len(endpoints) != 1 {
			return fmt.Sprintf("left: mounts %v sandboxes %v endpoints %v", mounts, sandboxes, endpoints)
		}
		// The anonymous volume goes with it (removed right after the container).
		if ents, _ := os.ReadDir(filepath.Join(e.root, "volumes")); len(ents) != 0 {
			var names []string
			for _, d := range ents {
				names = append(names, d.Name())
			}
			return fmt.Sprintf("volumes left: %v", names)
		}
		return ""
	})
}
