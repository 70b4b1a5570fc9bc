// Command storagebench helps bench/storage.sh: it serves a throw-away in-memory registry on
// 127.0.0.1 filled with generated images, and hashes files the way berth does.
//
//	storagebench serve PORTFILE [-layers 10] [-mb 200] [-derived 20]
//	    Pushes bench/base:latest (LAYERS gzip layers, MB megabytes of files in all) and
//	    bench/app1..appN:latest (the base plus one small layer each), writes "PORT BASEBYTES
//	    BASEUNPACKED" to PORTFILE when ready, and serves until killed.
//	storagebench sha256 FILE
//	    Prints the sha256 of FILE (crypto/sha256, as berth hashes layers).
package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/klauspost/compress/gzip"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: storagebench serve PORTFILE [flags] | sha256 FILE")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2], os.Args[3:])
	case "sha256":
		err = hashFile(os.Args[2])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "storagebench:", err)
		os.Exit(1)
	}
}

func hashFile(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, f, make([]byte, 1<<20)); err != nil {
		return err
	}
	fmt.Println("sha256:" + hex.EncodeToString(h.Sum(nil)))
	return nil
}

func serve(portFile string, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	layers := fs.Int("layers", 10, "layers in the base image")
	mb := fs.Int("mb", 200, "megabytes of file content in the base image")
	derived := fs.Int("derived", 20, "images built on the base")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: registry.New(registry.Logger(log.New(io.Discard, "", 0)))}
	go srv.Serve(ln)
	host := ln.Addr().String()

	rnd := rand.New(rand.NewChaCha8([32]byte{42}))
	base := empty.Image
	var unpacked int64
	per := int64(*mb) << 20 / int64(*layers)
	for i := 0; i < *layers; i++ {
		l, n, err := genLayer(rnd, fmt.Sprintf("l%02d", i), per)
		if err != nil {
			return err
		}
		unpacked += n
		if base, err = mutate.AppendLayers(base, l); err != nil {
			return err
		}
	}
	cf, err := base.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config.Cmd = []string{"/bin/sh"}
	if base, err = mutate.ConfigFile(base, cf); err != nil {
		return err
	}
	if err := push(host, "bench/base:latest", base); err != nil {
		return err
	}
	for i := 1; i <= *derived; i++ {
		l, _, err := genLayer(rnd, fmt.Sprintf("app%02d", i), 64<<10)
		if err != nil {
			return err
		}
		img, err := mutate.AppendLayers(base, l)
		if err != nil {
			return err
		}
		if err := push(host, fmt.Sprintf("bench/app%d:latest", i), img); err != nil {
			return err
		}
	}
	size, err := imageSize(base)
	if err != nil {
		return err
	}
	_, port, _ := net.SplitHostPort(host)
	tmp := portFile + ".tmp"
	if err := os.WriteFile(tmp, []byte(fmt.Sprintf("%s %d %d\n", port, size, unpacked)), 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, portFile); err != nil {
		return err
	}
	select {} // serve until killed
}

func push(host, repo string, img v1.Image) error {
	ref, err := name.ParseReference(host+"/"+repo, name.Insecure)
	if err != nil {
		return err
	}
	if err := remote.Write(ref, img); err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	return nil
}

// imageSize is the sum of the compressed layer sizes.
func imageSize(img v1.Image) (int64, error) {
	ls, err := img.Layers()
	if err != nil {
		return 0, err
	}
	var n int64
	for _, l := range ls {
		s, err := l.Size()
		if err != nil {
			return 0, err
		}
		n += s
	}
	return n, nil
}

// genLayer makes a gzip layer of about size bytes of files under dir/: a size mix like a
// distribution's (mostly small files, some large), content half random and half text so it
// compresses about 2:1 like binaries and libraries do.
func genLayer(rnd *rand.Rand, dir string, size int64) (v1.Layer, int64, error) {
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	tw.WriteHeader(&tar.Header{Name: dir + "/", Typeflag: tar.TypeDir, Mode: 0o755})
	text := bytes.Repeat([]byte("the quick brown fox jumps over the lazy dog 0123456789\n"), 1<<12)
	var total int64
	for i := 0; total < size; i++ {
		n := int64(100 + rnd.IntN(8<<10))
		switch r := rnd.IntN(100); {
		case r >= 99:
			n = int64(1<<20 + rnd.IntN(4<<20))
		case r >= 70:
			n = int64(8<<10 + rnd.IntN(248<<10))
		}
		n = min(n, size-total)
		body := make([]byte, n)
		half := n / 2
		for off := int64(0); off < half; off += 8 {
			v := rnd.Uint64()
			for k := int64(0); k < 8 && off+k < half; k++ {
				body[off+k] = byte(v >> (8 * k))
			}
		}
		for off := half; off < n; off += int64(len(text)) {
			copy(body[off:], text)
		}
		if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("%s/f%05d", dir, i), Typeflag: tar.TypeReg, Mode: 0o644, Size: n}); err != nil {
			return nil, 0, err
		}
		tw.Write(body)
		total += n
	}
	if err := tw.Close(); err != nil {
		return nil, 0, err
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	zw.Write(raw.Bytes())
	if err := zw.Close(); err != nil {
		return nil, 0, err
	}
	b := gz.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	return l, total, err
}
