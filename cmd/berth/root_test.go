package main

import (
	"os"
	"reflect"
	"testing"
)

func TestExpandGlobalShorthands(t *testing.T) {
	root := newRootCmd(&app{stdout: os.Stdout, stderr: os.Stderr})
	for _, tc := range []struct {
		in, want []string
	}{
		{[]string{"-f", "a.yaml", "up"}, []string{"--file", "a.yaml", "up"}},
		{[]string{"-f=a.yaml", "-p", "x", "up"}, []string{"--file=a.yaml", "--project-name", "x", "up"}},
		{[]string{"-fa.yaml", "config"}, []string{"--file=a.yaml", "config"}},
		{[]string{"config", "-f", "a.yaml"}, []string{"config", "--file", "a.yaml"}},
		{[]string{"-f", "a.yaml", "container", "rm", "-f", "x"}, []string{"--file", "a.yaml", "container", "rm", "-f", "x"}},
		{[]string{"container", "logs", "-f", "x"}, []string{"container", "logs", "-f", "x"}},
		{[]string{"--root", "/tmp/r", "-p", "demo", "config"}, []string{"--root", "/tmp/r", "--project-name", "demo", "config"}},
		{[]string{"config", "--", "-f"}, []string{"config", "--", "-f"}},
		{[]string{"run", "--rm", "worker", "-probe", "x", "-p", "y"}, []string{"run", "--rm", "worker", "-probe", "x", "-p", "y"}},
		{[]string{"-p", "demo", "exec", "web", "ls", "-f"}, []string{"--project-name", "demo", "exec", "web", "ls", "-f"}},
		{[]string{"up", "-d", "-f", "a.yaml"}, []string{"up", "-d", "--file", "a.yaml"}},
		{[]string{"down", "-t", "0", "-p", "x"}, []string{"down", "-t", "0", "--project-name", "x"}},
		{[]string{"up", "--scale", "web=3", "-p", "x", "web"}, []string{"up", "--scale", "web=3", "--project-name", "x", "web"}},
	} {
		if got := expandGlobalShorthands(root, tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("expandGlobalShorthands(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
