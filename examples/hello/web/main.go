// Command web is the HTTP front of the hello example: it answers with the replica that served the
// request and counts visits in the store service.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", ":8080", "listen address")
	store := flag.String("store", envOr("STORE_URL", "http://store:7000"), "store base URL")
	health := flag.Bool("healthcheck", false, "probe the local server and exit 0 when healthy")
	flag.Parse()

	if *health {
		os.Exit(probe("http://127.0.0.1" + portOf(*addr) + "/healthz"))
	}

	host, _ := os.Hostname()
	client := &http.Client{Timeout: 2 * time.Second}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		visits, err := increment(r.Context(), client, *store, "visits")
		if err != nil {
			http.Error(w, "store unavailable: "+err.Error(), http.StatusBadGateway)
			return
		}
		fmt.Fprintf(w, "hello from %s (visit %s)\n", host, visits)
	})

	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Printf("web %s listening on %s, store at %s", host, *addr, *store)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

func increment(ctx context.Context, c *http.Client, base, key string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/incr/"+key, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("store answered %s", resp.Status)
	}
	return strings.TrimSpace(string(b)), nil
}

func probe(url string) int {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 1
	}
	return 0
}

func portOf(addr string) string {
	if i := strings.LastIndex(addr, ":"); i >= 0 {
		return addr[i:]
	}
	return ":8080"
}

func envOr(k, d string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return d
}
