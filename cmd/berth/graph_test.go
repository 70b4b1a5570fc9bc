package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const graphTestCompose = `name: shop
services:
  web:
    image: nginx
    scale: 2
    depends_on:
      api: {condition: service_healthy}
      cache: {condition: service_started, required: false}
    links: ["api:backend"]
  api:
    image: api
    depends_on:
      db: {condition: service_healthy, restart: true}
      migrate: {condition: service_completed_successfully}
  migrate:
    image: api
    depends_on: [db]
  db:
    image: postgres
  cache:
    image: redis
    network_mode: "service:db"
`

func graphRun(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "compose.yaml")
	if err := os.WriteFile(file, []byte(graphTestCompose), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run(append([]string{"-f", file, "--root", filepath.Join(dir, "root"), "--run-root", filepath.Join(dir, "run"), "graph"}, args...),
		strings.NewReader(""), &stdout, &stderr)
	return stdout.String(), stderr.String(), code
}

func TestGraphMermaid(t *testing.T) {
	out, errOut, code := graphRun(t)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want := `flowchart TD
    s0["db<br/>1 replica"]
    s1["cache<br/>1 replica"]
    s2["migrate<br/>1 replica"]
    s3["api<br/>1 replica"]
    s4["web<br/>2 replicas"]
    s1 -->|service_started, restart; network_mode| s0
    s2 -->|service_started| s0
    s3 -->|service_healthy, restart| s0
    s3 -->|service_completed_successfully| s2
    s4 -->|service_healthy; links| s3
    s4 -.->|service_started, optional| s1
`
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("mermaid (-want +got):\n%s", diff)
	}
}

func TestGraphDOT(t *testing.T) {
	out, errOut, code := graphRun(t, "--format", "dot")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want := `digraph "shop" {
    node [shape=box];
    "db" [label="db\n1 replica"];
    "cache" [label="cache\n1 replica"];
    "migrate" [label="migrate\n1 replica"];
    "api" [label="api\n1 replica"];
    "web" [label="web\n2 replicas"];
    "cache" -> "db" [label="service_started, restart; network_mode"];
    "migrate" -> "db" [label="service_started"];
    "api" -> "db" [label="service_healthy, restart"];
    "api" -> "migrate" [label="service_completed_successfully"];
    "web" -> "api" [label="service_healthy; links"];
    "web" -> "cache" [label="service_started, optional", style=dashed];
}
`
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("dot (-want +got):\n%s", diff)
	}
}

func TestGraphBadFormat(t *testing.T) {
	_, errOut, code := graphRun(t, "--format", "png")
	if code != 1 || !strings.Contains(errOut, "use mermaid or dot") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}
