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
	} {
		if got := expandGlobalShorthands(root, tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("expandGlobalShorthands(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
