// Command store is the hello example's key-value server. It keeps every key in one JSON file
// under -dir (a named volume in compose.yaml), so the data survives down and up.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

type store struct {
	mu   sync.Mutex
	path string
	data map[string]string
}

func open(dir string) (*store, error) {
	s := &store{path: filepath.Join(dir, "data.json"), data: map[string]string{}}
	b, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &s.data); err != nil {
		return nil, fmt.Errorf("read %s: %w", s.path, err)
	}
	return s, nil
}

// save writes the data crash-safely: a temporary file, fsync, rename.
func (s *store) save() error {
	b, err := json.Marshal(s.data)
	if err != nil {
		return err
	}
	tmp := s.path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, s.path)
}

func (s *store) handle(w http.ResponseWriter, r *http.Request) {
	op, key, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if !ok || key == "" {
		http.Error(w, "use /get/KEY, /set/KEY or /incr/KEY", http.StatusNotFound)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case op == "get" && r.Method == http.MethodGet:
		v, found := s.data[key]
		if !found {
			http.Error(w, "no such key", http.StatusNotFound)
			return
		}
		fmt.Fprintln(w, v)
	case op == "set" && r.Method == http.MethodPut:
		b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.data[key] = string(b)
		if err := s.save(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
	case op == "incr" && r.Method == http.MethodPost:
		n, _ := strconv.Atoi(s.data[key])
		n++
		s.data[key] = strconv.Itoa(n)
		if err := s.save(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, n)
	default:
		http.Error(w, "unsupported", http.StatusMethodNotAllowed)
	}
}

func main() {
	addr := flag.String("addr", ":7000", "listen address")
	dir := flag.String("dir", "/data", "data directory")
	health := flag.Bool("healthcheck", false, "probe the local server and exit 0 when healthy")
	flag.Parse()
	if *health {
		c := &http.Client{Timeout: 2 * time.Second}
		resp, err := c.Get("http://127.0.0.1" + (*addr)[strings.LastIndex(*addr, ":"):] + "/healthz")
		if err != nil || resp.StatusCode != http.StatusOK {
			os.Exit(1)
		}
		os.Exit(0)
	}
	s, err := open(*dir)
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/", s.handle)
	log.Printf("store listening on %s, data in %s (%d keys)", *addr, *dir, len(s.data))
	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
