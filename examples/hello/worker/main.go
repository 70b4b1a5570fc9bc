// Command worker does periodic work against the store: every -every it bumps the "ticks" key and
// logs the new value.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"
)

func main() {
	store := flag.String("store", "http://store:7000", "store base URL")
	every := flag.Duration("every", 5*time.Second, "interval between ticks")
	probeURL := flag.String("probe", "", "instead of working, send -n requests to this URL, one to each address its host resolves to in turn, and print the answers")
	n := flag.Int("n", 6, "number of requests for -probe")
	flag.Parse()
	if *probeURL != "" {
		if err := probe(*probeURL, *n); err != nil {
			log.Fatal(err)
		}
		return
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	client := &http.Client{Timeout: 2 * time.Second}
	t := time.NewTicker(*every)
	defer t.Stop()
	for {
		if n, err := tick(ctx, client, *store); err != nil {
			log.Printf("tick failed: %v", err)
		} else {
			log.Printf("tick %s", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// probe spreads n requests over every address that the URL's host name resolves to, the way a
// client-side load balancer uses service-name DNS, and prints each answer.
func probe(raw string, n int) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	addrs, err := net.LookupHost(u.Hostname())
	if err != nil {
		return err
	}
	sort.Strings(addrs)
	fmt.Printf("%s resolves to %d address(es): %s\n", u.Hostname(), len(addrs), strings.Join(addrs, " "))
	c := &http.Client{Timeout: 2 * time.Second}
	for i := 0; i < n; i++ {
		target := *u
		target.Host = net.JoinHostPort(addrs[i%len(addrs)], u.Port())
		resp, err := c.Get(target.String())
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%s -> %s", target.Host, b)
	}
	return nil
}

func tick(ctx context.Context, c *http.Client, base string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/incr/ticks", nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("store answered %s", resp.Status)
	}
	return strings.TrimSpace(string(b)), nil
}
