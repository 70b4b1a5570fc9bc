package main

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/berth-dev/berth/engine"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// lockedBuffer is a bytes.Buffer safe for the ticker's writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func newTestTTY(w interface{ Write([]byte) (int, error) }, width, height int) (*ttyProgress, *fakeClock) {
	clock := &fakeClock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	p := newTTYProgress(w, ttyConfig{
		Now:     clock.Now,
		Size:    func() (int, int, error) { return width, height, nil },
		Unicode: true,
	})
	return p, clock
}

// screen replays what a renderer wrote on a terminal that understands the sequences it uses
// (CR, LF as CR+LF, cursor up, erase line, erase below, colours) and returns the visible rows.
func screen(t *testing.T, out string) []string {
	t.Helper()
	var rows [][]rune
	row, col := 0, 0
	ensure := func() {
		for len(rows) <= row {
			rows = append(rows, nil)
		}
	}
	for i := 0; i < len(out); {
		switch c := out[i]; {
		case c == '\r':
			col = 0
			i++
		case c == '\n':
			row, col = row+1, 0
			ensure()
			i++
		case c == 0x1b:
			if i+1 >= len(out) || out[i+1] != '[' {
				t.Fatalf("unexpected escape at %d: %q", i, out[i:])
			}
			j := i + 2
			for j < len(out) && (out[j] >= '0' && out[j] <= '9' || out[j] == ';' || out[j] == '?') {
				j++
			}
			if j >= len(out) {
				t.Fatalf("unterminated escape: %q", out[i:])
			}
			n, _ := strconv.Atoi(out[i+2 : j])
			switch out[j] {
			case 'A':
				row = max(row-max(n, 1), 0)
			case 'B':
				if row+max(n, 1) >= len(rows) {
					t.Fatalf("cursor down past the screen's last row at %d: %q", i, out[i:])
				}
				row += max(n, 1)
			case 'K':
				ensure()
				if col < len(rows[row]) {
					rows[row] = rows[row][:col]
				}
			case 'J':
				ensure()
				if col < len(rows[row]) {
					rows[row] = rows[row][:col]
				}
				rows = rows[:row+1]
			case 'm':
			default:
				t.Fatalf("unexpected sequence %q", out[i:j+1])
			}
			i = j + 1
		default:
			r, size := utf8.DecodeRuneInString(out[i:])
			ensure()
			for len(rows[row]) < col {
				rows[row] = append(rows[row], ' ')
			}
			if col < len(rows[row]) {
				rows[row][col] = r
			} else {
				rows[row] = append(rows[row], r)
			}
			col++
			i += size
		}
	}
	var lines []string
	for _, r := range rows {
		lines = append(lines, string(r))
	}
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

func ev(resource, name, status, text string) engine.Event {
	return engine.Event{Resource: resource, Name: name, Status: status, Text: text}
}

// up sends what an `up` of one network, one volume, one image and two containers reports.
func upEvents(p engine.Progress, clock *fakeClock) {
	p.Start("up")
	p.Event(ev("network:proj_default", "proj_default", engine.StatusWorking, "Creating"))
	p.Event(ev("volume:proj_data", "proj_data", engine.StatusWorking, "Creating"))
	clock.Add(100 * time.Millisecond)
	p.Event(ev("network:proj_default", "proj_default", engine.StatusDone, "Created"))
	p.Event(ev("image:busybox:latest", "busybox:latest", engine.StatusDone, "Present"))
	clock.Add(100 * time.Millisecond)
	p.Event(ev("volume:proj_data", "proj_data", engine.StatusDone, "Created"))
	for _, c := range []string{"proj-web-1", "proj-db-1"} {
		p.Event(ev("service:"+strings.Split(c, "-")[1]+":1", c, engine.StatusWorking, "Creating"))
	}
	clock.Add(200 * time.Millisecond)
	p.Event(ev("service:db:1", "proj-db-1", engine.StatusDone, "Created"))
	p.Event(ev("service:db:1", "proj-db-1", engine.StatusWorking, "Starting"))
	clock.Add(200 * time.Millisecond)
	p.Event(ev("service:db:1", "proj-db-1", engine.StatusDone, "Started"))
	p.Event(ev("service:web:1", "proj-web-1", engine.StatusDone, "Created"))
	p.Event(ev("service:web:1", "proj-web-1", engine.StatusWorking, "Starting"))
	clock.Add(1234 * time.Millisecond)
	p.Event(ev("service:web:1", "proj-web-1", engine.StatusDone, "Started"))
	p.Done(nil)
}

func TestTTYProgressFinalFrame(t *testing.T) {
	var out bytes.Buffer
	p, clock := newTestTTY(&out, 60, 0)
	upEvents(p, clock)
	want := []string{
		"[+] Running 5/5",
		" ✔ Network proj_default  Created                       0.1s",
		" ✔ Volume proj_data      Created                       0.2s",
		" ✔ Image busybox:latest  Present                       0.0s",
		" ✔ Container proj-web-1  Started                       1.6s",
		" ✔ Container proj-db-1   Started                       0.4s",
	}
	if diff := cmp.Diff(want, screen(t, out.String())); diff != "" {
		t.Errorf("final frame (-want +got):\n%s\nraw: %q", diff, out.String())
	}
}

func TestTTYProgressUpdatesLineInPlace(t *testing.T) {
	var out bytes.Buffer
	p, clock := newTestTTY(&out, 60, 0)
	p.Start("up")
	p.Event(ev("network:proj_default", "proj_default", engine.StatusWorking, "Creating"))
	p.Event(ev("service:web:1", "proj-web-1", engine.StatusWorking, "Creating"))
	clock.Add(300 * time.Millisecond)
	want := []string{
		"[+] Running 0/2",
		" ⠸ Network proj_default  Creating                      0.3s",
		" ⠸ Container proj-web-1  Creating                      0.3s",
	}
	for _, text := range []string{"Creating", "Created", "Starting"} {
		status := engine.StatusWorking
		if text == "Created" {
			status = engine.StatusDone
		}
		p.Event(ev("service:web:1", "proj-web-1", status, text))
		got := screen(t, out.String())
		if len(got) != 3 {
			t.Fatalf("after %q: %d rows, want 3:\n%s", text, len(got), strings.Join(got, "\n"))
		}
		if !strings.Contains(got[2], text) {
			t.Errorf("after %q: container line %q", text, got[2])
		}
	}
	if diff := cmp.Diff(want[:2], screen(t, out.String())[:2]); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// The ticker's frame moves the spinner and the time on.
	clock.Add(1200 * time.Millisecond)
	p.mu.Lock()
	gen := p.gen
	p.mu.Unlock()
	p.tick(gen)
	if got := screen(t, out.String()); got[1] != " ⠴ Network proj_default  Creating                      1.5s" {
		t.Errorf("after a tick: %q", got[1])
	}
}

func TestTTYProgressFailure(t *testing.T) {
	var out bytes.Buffer
	p, clock := newTestTTY(&out, 60, 0)
	p.Start("up")
	p.Event(ev("network:proj_default", "proj_default", engine.StatusDone, "Created"))
	p.Event(ev("service:web:1", "proj-web-1", engine.StatusWorking, "Starting"))
	clock.Add(500 * time.Millisecond)
	err := errors.New("port 8080 is already allocated")
	p.Event(engine.Event{Resource: "service:web:1", Name: "proj-web-1", Status: engine.StatusError, Text: err.Error(), Err: err})
	p.Event(engine.Event{Resource: "service:db:1", Name: "proj-db-1", Status: engine.StatusError, Err: errors.New("exec: \"/bin/db\": no such file or directory\nin the image")})
	p.Done(err)
	want := []string{
		"[+] Running 3/3",
		" ✔ Network proj_default  Created                       0.0s",
		" ✘ Container proj-web-1  port 8080 is already          0.5s",
		"                         allocated",
		" ✘ Container proj-db-1   exec: \"/bin/db\": no such file 0.0s",
		"                         or directory in the image",
	}
	if diff := cmp.Diff(want, screen(t, out.String())); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestTTYProgressASCII(t *testing.T) {
	var out bytes.Buffer
	clock := &fakeClock{}
	p := newTTYProgress(&out, ttyConfig{Now: clock.Now}) // no Size: 80 columns
	p.Event(ev("service:web:1", "proj-web-1", engine.StatusWorking, "Starting"))
	if got := screen(t, out.String()); !strings.HasPrefix(got[1], " - Container proj-web-1  Starting") || len(got[1]) != 79 {
		t.Errorf("working line %q (%d columns)", got[1], len(got[1]))
	}
	p.Event(ev("service:db:1", "proj-db-1", engine.StatusError, "boom"))
	p.Event(ev("service:web:1", "proj-web-1", engine.StatusDone, "Started"))
	p.Done(nil)
	got := screen(t, out.String())
	if !strings.HasPrefix(got[1], " + Container proj-web-1  Started") || !strings.HasPrefix(got[2], " x Container proj-db-1   boom") {
		t.Errorf("ASCII marks:\n%s", strings.Join(got, "\n"))
	}
	if strings.ContainsFunc(out.String(), func(r rune) bool { return r >= utf8.RuneSelf }) {
		t.Errorf("non-ASCII output: %q", out.String())
	}
}

func TestTTYProgressInterleavedWrites(t *testing.T) {
	var out bytes.Buffer
	p, clock := newTestTTY(&out, 60, 0)
	p.Start("up")
	p.Event(ev("network:proj_default", "proj_default", engine.StatusWorking, "Creating"))
	p.Event(ev("service:web:1", "proj-web-1", engine.StatusWorking, "Creating"))
	p.Event(ev("project:proj", "proj", engine.StatusWarning, "found orphan containers: proj-old-1"))
	w := progressOut(p, nil)
	if _, err := w.Write([]byte("warning: a note in two ")); err != nil {
		t.Fatal(err)
	}
	clock.Add(100 * time.Millisecond)
	p.Event(ev("network:proj_default", "proj_default", engine.StatusDone, "Created"))
	w.Write([]byte("writes\nand a second line\n"))
	p.Event(ev("service:web:1", "proj-web-1", engine.StatusDone, "Created"))
	w.Write([]byte("unfinished"))
	p.Done(nil)
	p.Event(ev("project:proj", "proj", engine.StatusWarning, "after the block"))
	want := []string{
		" ! found orphan containers: proj-old-1",
		"warning: a note in two writes",
		"and a second line",
		"unfinished",
		"[+] Running 2/2",
		" ✔ Network proj_default  Created                       0.1s",
		" ✔ Container proj-web-1  Created                       0.1s",
		" ! after the block",
	}
	if diff := cmp.Diff(want, screen(t, out.String())); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestTTYProgressNarrowTerminal(t *testing.T) {
	var out bytes.Buffer
	p, _ := newTestTTY(&out, 32, 0)
	p.Event(ev("image:registry.example.com/team/app:1.2.3", "registry.example.com/team/app:1.2.3", engine.StatusWorking, "Pulling"))
	p.Event(ev("service:web:1", "proj-web-1", engine.StatusWorking, "Starting a very long status text"))
	p.Event(ev("service:db:1", "proj-db-1", engine.StatusError, "a long error message that needs wrapping "+strings.Repeat("x", 200)))
	got := screen(t, out.String())
	for _, r := range got {
		if n := cells(r); n > 31 {
			t.Errorf("row of %d columns, want at most 31: %q", n, r)
		}
	}
	want := []string{
		"[+] Running 1/3",
		" ⠋ Image registry…  Pulli… 0.0s",
		" ⠋ Container proj…  Start… 0.0s",
	}
	if diff := cmp.Diff(want, got[:3]); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if len(got) != 3+maxErrorRows {
		t.Errorf("failed line wraps to %d rows, want %d:\n%s", len(got)-3, maxErrorRows, strings.Join(got, "\n"))
	}
	// Narrower than the timer needs: the timer goes, nothing overflows.
	out.Reset()
	p2, _ := newTestTTY(&out, 12, 0)
	p2.Event(ev("service:web:1", "proj-web-1", engine.StatusWorking, "Starting"))
	for _, r := range screen(t, out.String()) {
		if n := cells(r); n > 11 {
			t.Errorf("row of %d columns, want at most 11: %q", n, r)
		}
	}
}

func TestTTYProgressTallBlock(t *testing.T) {
	var out bytes.Buffer
	p, clock := newTestTTY(&out, 60, 10)
	p.Start("up")
	for i := 1; i <= 20; i++ {
		n := strconv.Itoa(i)
		p.Event(ev("service:s"+n+":1", "proj-s"+n+"-1", engine.StatusWorking, "Starting"))
		if i%3 != 0 {
			clock.Add(10 * time.Millisecond)
			p.Event(ev("service:s"+n+":1", "proj-s"+n+"-1", engine.StatusDone, "Started"))
		}
		if rows := screen(t, out.String()); len(rows) > 9 {
			t.Fatalf("after %d resources the block has %d rows on a 10-row terminal:\n%s", i, len(rows), strings.Join(rows, "\n"))
		}
	}
	// What is in progress first, then the latest finished; the rest is counted.
	want := []string{
		"[+] Running 14/20",
		"   … 13 more",
		" ⠙ Container proj-s3-1   Starting                      0.1s",
		" ⠙ Container proj-s6-1   Starting                      0.1s",
		" ⠋ Container proj-s9-1   Starting                      0.1s",
		" ⠋ Container proj-s12-1  Starting                      0.1s",
		" ⠋ Container proj-s15-1  Starting                      0.0s",
		" ⠋ Container proj-s18-1  Starting                      0.0s",
		" ✔ Container proj-s20-1  Started                       0.0s",
	}
	if diff := cmp.Diff(want, screen(t, out.String())); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	p.Done(nil)
	if rows := screen(t, out.String()); len(rows) != 21 {
		t.Errorf("final frame has %d rows, want all 21", len(rows))
	}
}

func TestTTYProgressWithoutStartOrDone(t *testing.T) {
	var out bytes.Buffer
	p, _ := newTestTTY(&out, 60, 0)
	p.Event(ev("image:busybox", "busybox", engine.StatusDone, "Pulled"))
	p.Start("stop") // a second operation on the same renderer starts a new block
	p.Event(ev("service:web:1", "proj-web-1", engine.StatusWorking, "Stopping"))
	p.Done(nil)
	want := []string{
		"[+] Running 1/1",
		" ✔ Image busybox  Pulled                               0.0s",
		"[+] Running 0/1",
		" - Container proj-web-1  Stopping                      0.0s",
	}
	if diff := cmp.Diff(want, screen(t, out.String())); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestTTYProgressTicker(t *testing.T) {
	var out lockedBuffer
	p := newTTYProgress(&out, ttyConfig{Now: time.Now, Interval: time.Millisecond, Unicode: true})
	p.Start("up")
	p.Event(ev("service:web:1", "proj-web-1", engine.StatusWorking, "Starting"))
	first := len(out.String())
	deadline := time.Now().Add(5 * time.Second)
	for len(out.String()) < 4*first && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if len(out.String()) < 4*first {
		t.Fatalf("the ticker did not redraw: %q", out.String())
	}
	p.Done(nil)
	after := out.String()
	time.Sleep(20 * time.Millisecond)
	if out.String() != after {
		t.Errorf("output after Done: %q", strings.TrimPrefix(out.String(), after))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.timer != nil {
		t.Error("Done left the ticker armed")
	}
}

func TestTTYProgressTickerStopsWhenIdle(t *testing.T) {
	var out lockedBuffer
	p := newTTYProgress(&out, ttyConfig{Now: time.Now, Interval: time.Millisecond})
	p.Event(ev("service:web:1", "proj-web-1", engine.StatusWorking, "Starting"))
	p.Event(ev("service:web:1", "proj-web-1", engine.StatusDone, "Started"))
	// No Done (pull and push send events only): with nothing in progress the ticker stops,
	// so it cannot draw over what the command prints next.
	time.Sleep(10 * time.Millisecond)
	before := out.String()
	time.Sleep(20 * time.Millisecond)
	if out.String() != before {
		t.Errorf("idle ticker still drawing: %q", strings.TrimPrefix(out.String(), before))
	}
}

// The plain and json renderers' bytes are what scripts and tests parse; keep them.
func TestPlainAndJSONProgress(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	events := []engine.Event{
		{Time: at, Resource: "network:proj_default", Kind: "EnsureNetwork", Name: "proj_default", Status: engine.StatusWorking, Text: "Creating"},
		{Time: at, Resource: "service:web:1", Kind: "StartContainer", Name: "proj-web-1", Status: engine.StatusError, Text: "boom", Err: errors.New("boom")},
		{Time: at, Resource: "service:web", Kind: "WaitContainer", Name: "web", Status: engine.StatusDone, Text: "Healthy"},
		{Time: at, Resource: "project:proj", Name: "proj", Status: engine.StatusWarning, Text: "note"},
	}
	for _, tc := range []struct{ mode, want string }{
		{"plain", "Network proj_default Creating\nContainer proj-web-1 boom\nService web Healthy\nProject proj note\n"},
		{"bogus", "Network proj_default Creating\nContainer proj-web-1 boom\nService web Healthy\nProject proj note\n"},
		{"auto", "Network proj_default Creating\nContainer proj-web-1 boom\nService web Healthy\nProject proj note\n"},
		{"json", `{"kind":"EnsureNetwork","name":"proj_default","resource":"network:proj_default","status":"working","text":"Creating","time":"2025-01-02T03:04:05.000000006Z"}
{"error":"boom","kind":"StartContainer","name":"proj-web-1","resource":"service:web:1","status":"error","text":"boom","time":"2025-01-02T03:04:05.000000006Z"}
{"kind":"WaitContainer","name":"web","resource":"service:web","status":"done","text":"Healthy","time":"2025-01-02T03:04:05.000000006Z"}
{"kind":"","name":"proj","resource":"project:proj","status":"warning","text":"note","time":"2025-01-02T03:04:05.000000006Z"}
`},
		{"quiet", ""},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			var out bytes.Buffer
			p := composeNewProgress(&app{stderr: &out, opts: globalOptions{Progress: tc.mode}})
			p.Start("up")
			for _, e := range events {
				p.Event(e)
			}
			p.Done(nil)
			if diff := cmp.Diff(tc.want, out.String()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	if _, ok := composeNewProgress(&app{stderr: &bytes.Buffer{}, opts: globalOptions{Progress: "tty"}}).(*ttyProgress); !ok {
		t.Error("--progress tty did not pick the tty renderer")
	}
}

func TestLocaleIsUTF8(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want bool
	}{
		{map[string]string{}, false},
		{map[string]string{"LANG": "en_US.UTF-8"}, true},
		{map[string]string{"LANG": "C.utf8"}, true},
		{map[string]string{"LANG": "C"}, false},
		{map[string]string{"LANG": "en_US.UTF-8", "LC_ALL": "C"}, false},
		{map[string]string{"LANG": "C", "LC_CTYPE": "en_US.UTF-8"}, true},
	} {
		if got := localeIsUTF8(func(k string) string { return tc.env[k] }); got != tc.want {
			t.Errorf("%v: %v, want %v", tc.env, got, tc.want)
		}
	}
}

// countingWriter counts what a renderer writes.
type countingWriter struct{ n int }

func (w *countingWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

// BenchmarkTTYProgressUp100 renders the events of an `up` of 100 services (create, start)
// on a 120x50 terminal.
func BenchmarkTTYProgressUp100(b *testing.B) {
	var events []engine.Event
	for i := range 100 {
		r, name := "service:s"+strconv.Itoa(i)+":1", "proj-s"+strconv.Itoa(i)+"-1"
		events = append(events, ev(r, name, engine.StatusWorking, "Creating"), ev(r, name, engine.StatusDone, "Created"))
	}
	for i := range 100 {
		r, name := "service:s"+strconv.Itoa(i)+":1", "proj-s"+strconv.Itoa(i)+"-1"
		events = append(events, ev(r, name, engine.StatusWorking, "Starting"), ev(r, name, engine.StatusDone, "Started"))
	}
	var w countingWriter
	for b.Loop() {
		p, _ := newTestTTY(&w, 120, 50)
		p.Start("up")
		for _, e := range events {
			p.Event(e)
		}
		p.Done(nil)
	}
	b.ReportMetric(float64(w.n)/float64(b.N), "bytes/op")
}
