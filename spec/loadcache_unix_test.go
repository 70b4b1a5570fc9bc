//go:build unix

package spec

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestLoadFromPipe loads a compose file that is a pipe, as with `-f <(...)`: computing a cache
// key must not read it, or compose-go would find it empty (or wait for a writer forever).
func TestLoadFromPipe(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "compose.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	go func() {
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		defer f.Close()
		_, _ = f.WriteString("services:\n  web:\n    image: busybox\n")
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	var p *Project
	go func() {
		var err error
		p, err = Load(ctx, Options{Files: []string{fifo}, ProjectName: "pipe", Environ: []string{},
			Validated: &recordingCache{valid: map[string]bool{}}, Loaded: newMemLoadCache()})
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Load of a pipe hangs: the pipe was read before compose-go")
	}
	if _, ok := p.Service("web"); !ok {
		t.Fatalf("services %v, want web", p.ServiceNames())
	}
}
