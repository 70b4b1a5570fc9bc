package monitor

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestFrames(t *testing.T) {
	var buf bytes.Buffer
	for _, f := range []struct {
		typ byte
		p   []byte
	}{{FrameStdout, []byte("hello")}, {FrameStdinClose, nil}, {FrameExit, ExitPayload(-3)}, {FrameResize, ResizePayload(80, 24)}} {
		if err := WriteFrame(&buf, f.typ, f.p); err != nil {
			t.Fatal(err)
		}
	}
	rd := bytes.NewReader(buf.Bytes())
	b := make([]byte, 2)
	typ, p, err := ReadFrame(rd, b)
	if err != nil || typ != FrameStdout || string(p) != "hello" {
		t.Fatalf("frame 1 = %d %q %v", typ, p, err)
	}
	if typ, p, err = ReadFrame(rd, b); err != nil || typ != FrameStdinClose || len(p) != 0 {
		t.Fatalf("frame 2 = %d %q %v", typ, p, err)
	}
	typ, p, err = ReadFrame(rd, b)
	if code, ok := ExitCode(p); err != nil || typ != FrameExit || !ok || code != -3 {
		t.Fatalf("frame 3 = %d %v %v %v", typ, code, ok, err)
	}
	if typ, p, err = ReadFrame(rd, b); err != nil || typ != FrameResize || !bytes.Equal(p, []byte{0, 80, 0, 24}) {
		t.Fatalf("frame 4 = %d %v %v", typ, p, err)
	}
	if _, _, err := ReadFrame(rd, b); err != io.EOF {
		t.Errorf("at the end: %v", err)
	}
	big := []byte{FrameStdin, 0x10, 0, 0, 0}
	if _, _, err := ReadFrame(bytes.NewReader(big), nil); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("oversized frame: %v", err)
	}
}

var jsonStrings = []string{
	"", "plain", `quote " and \ backslash`, "<html> & more", "tab\tnew\nline\rcr\bbs\fff",
	"\x00\x01\x1f\x7f", "héllo wörld ✓ 😀", "\u2028\u2029", "bad \xff utf8 \xc3", "/slash",
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range jsonStrings {
		want, _ := json.Marshal(s)
		if got := appendString(nil, s); string(got) != string(want) {
			t.Errorf("appendString(%q) = %s, want %s", s, got, want)
		}
	}
}

func TestParseJSON(t *testing.T) {
	for _, doc := range []string{
		`{"a":1,"b":[true,false,null,"x"],"c":{"d":-1.5e3,"e":""}}`,
		` [ ] `, `"\u00e9\ud83d\ude00\n\"\\\/"`, `{"k":"\ud800"}`, `123456789012`,
	} {
		var want any
		if err := json.Unmarshal([]byte(doc), &want); err != nil {
			t.Fatal(err)
		}
		got, err := parseJSON([]byte(doc))
		if err != nil {
			t.Errorf("parseJSON(%s): %v", doc, err)
			continue
		}
		if diff := cmp.Diff(want, plain(got)); diff != "" {
			t.Errorf("parseJSON(%s): %s", doc, diff)
		}
	}
	for _, s := range jsonStrings {
		b, _ := json.Marshal(s)
		var want string
		_ = json.Unmarshal(b, &want)
		if got, err := parseJSON(b); err != nil || got != want {
			t.Errorf("parseJSON(%s) = %q, %v; want %q", b, got, err, want)
		}
	}
	for _, bad := range []string{``, `{`, `{"a"}`, `[1,]`, `"abc`, `tru`, `{"a":1}x`, "\"a\x01\""} {
		if _, err := parseJSON([]byte(bad)); err == nil {
			t.Errorf("parseJSON(%q): no error", bad)
		}
	}
}

// plain converts parseJSON's numbers to float64, as encoding/json decodes them into any.
func plain(v any) any {
	switch v := v.(type) {
	case number:
		f, _ := strconv.ParseFloat(string(v), 64)
		return f
	case map[string]any:
		for k, e := range v {
			v[k] = plain(e)
		}
	case []any:
		for i, e := range v {
			v[i] = plain(e)
		}
	}
	return v
}

func TestParseConfig(t *testing.T) {
	doc := `{"id":"x","name":"n","args":["sh"],"tty":true,"openStdin":true,"restart":"on-failure:3",
		"healthcheck":{"test":["CMD-SHELL","true"],"interval":1000000000,"timeout":2000000000,
		"startPeriod":3000000000,"startInterval":4000000000,"retries":5},
		"logMaxSize":-1,"logMaxFiles":2,"autoRemove":true,"autoRemoveCmd":["berth","rm","-f","x"],
		"resources":{},"created":"2026-01-02T03:04:05Z"}`
	got, err := parseConfig([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	want := config{Tty: true, OpenStdin: true, Restart: "on-failure:3",
		Healthcheck: &healthcheck{Test: []string{"CMD-SHELL", "true"}, Interval: time.Second, Timeout: 2 * time.Second,
			StartPeriod: 3 * time.Second, StartInterval: 4 * time.Second, Retries: 5},
		LogMaxSize: -1, LogMaxFiles: 2, AutoRemove: true, AutoRemoveCmd: []string{"berth", "rm", "-f", "x"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Error(diff)
	}
}

func TestRestartPolicy(t *testing.T) {
	for _, tc := range []struct {
		in         string
		code, n    int
		stopped    bool
		want, fail bool
	}{
		{"", 1, 0, false, false, false},
		{"always", 0, 9, false, true, false},
		{"always", 0, 0, true, false, false},
		{"unless-stopped", 1, 0, false, true, false},
		{"on-failure", 0, 0, false, false, false},
		{"on-failure:2", 1, 1, false, true, false},
		{"on-failure:2", 1, 2, false, false, false},
		{"on-failure:x", 0, 0, false, false, true},
		{"sometimes", 0, 0, false, false, true},
	} {
		p, err := parseRestart(tc.in)
		if (err != nil) != tc.fail {
			t.Errorf("parseRestart(%q): %v", tc.in, err)
			continue
		}
		if err == nil && p.shouldRestart(tc.code, tc.n, tc.stopped) != tc.want {
			t.Errorf("%q.shouldRestart(%d, %d, %v) != %v", tc.in, tc.code, tc.n, tc.stopped, tc.want)
		}
	}
	if backoff(0) != 100*time.Millisecond || backoff(3) != 800*time.Millisecond || backoff(50) != time.Minute {
		t.Errorf("backoff: %v %v %v", backoff(0), backoff(3), backoff(50))
	}
}

type logRecord struct {
	Time    time.Time `json:"time"`
	Stream  string    `json:"stream"`
	Text    string    `json:"text"`
	Partial bool      `json:"partial"`
}

func readRecords(t *testing.T, path string) []logRecord {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []logRecord
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if line == "" {
			continue
		}
		var r logRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%s: bad line %q: %v", path, line, err)
		}
		out = append(out, r)
	}
	return out
}

func TestLogWriter(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "log")
	w, err := OpenLogWriter(path, 1000, 3)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 60 {
		w.Write(FrameStdout, []byte("line "+strconv.Itoa(i)+" <&>\n"))
	}
	w.Write(FrameStderr, []byte("part"))
	w.Write(FrameStderr, []byte("ial\nrest"))
	w.Close()
	for _, name := range []string{"log", "log.1", "log.2"} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil || st.Size() > 1000 {
			t.Errorf("%s: %v, %v", name, st, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "log.3")); err == nil {
		t.Errorf("kept more than 3 files")
	}
	recs := readRecords(t, path)
	n := len(recs)
	if n < 2 || recs[n-2].Text != "partial" || recs[n-2].Stream != "stderr" ||
		recs[n-1].Text != "rest" || !recs[n-1].Partial || recs[n-2].Partial {
		t.Errorf("last records: %+v", recs[max(0, n-2):])
	}
	if older := append(readRecords(t, path+".1"), recs...); older[len(older)-3].Text != "line 59 <&>" {
		t.Errorf("last stdout line: %+v", older[len(older)-3])
	}
	if time.Since(recs[0].Time) > time.Minute {
		t.Errorf("time %v", recs[0].Time)
	}
	// Output without a newline is recorded in partial records of MaxLogLine; an unlimited log
	// never rotates.
	path2 := filepath.Join(dir, "log2")
	w, err = OpenLogWriter(path2, -1, 1)
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", MaxLogLine+10)
	w.Write(FrameStdout, []byte(long))
	w.Close()
	recs = readRecords(t, path2)
	if len(recs) != 2 || !recs[0].Partial || len(recs[0].Text) != MaxLogLine || recs[1].Text != "xxxxxxxxxx" || !recs[1].Partial {
		t.Errorf("long line: %d records", len(recs))
	}
}

// testMonitor is a monitor without a container, serving its socket in a temp directory.
func testMonitor(t *testing.T) (*monitor, string) {
	t.Helper()
	dir := t.TempDir()
	m := &monitor{id: "0123456789abcdef", dir: dir, runDir: dir, clients: map[*client]struct{}{},
		stopCh: make(chan struct{}), done: make(chan struct{}), attachCh: make(chan struct{}),
		tr: func(string) {}, reaper: &reaper{waiting: map[int]chan syscall.WaitStatus{}, exited: map[int]syscall.WaitStatus{}}}
	lw, err := OpenLogWriter(filepath.Join(dir, "log"), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	m.logw = lw
	sock := filepath.Join(dir, "monitor.sock")
	ln, err := listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	go m.serve(ln)
	t.Cleanup(func() { ln.Close(); lw.Close() })
	return m, sock
}

func request(t *testing.T, sock, line string) string {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		t.Fatal(err)
	}
	reply, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	return strings.TrimSuffix(reply, "\n")
}

func TestProtocol(t *testing.T) {
	m, sock := testMonitor(t)
	if got := request(t, sock, "kill 15"); got != "err container is not running" {
		t.Errorf("kill of a stopped container: %q", got)
	}
	if got := request(t, sock, "bogus"); got != "err unknown request" {
		t.Errorf("unknown request: %q", got)
	}
	if got := request(t, sock, "stop 15"); got != "err bad stop request" {
		t.Errorf("bad stop: %q", got)
	}

	// attach: output goes to the client as frames, its stdin frames to the container.
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer inR.Close()
	m.stdin = inW
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "attach\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-m.attachCh:
	case <-time.After(10 * time.Second):
		t.Fatal("attach not registered")
	}
	m.output(FrameStdout, []byte("out\n"))
	m.output(FrameStderr, []byte("err\n"))
	if err := WriteFrame(c, FrameStdin, []byte("typed")); err != nil {
		t.Fatal(err)
	}
	if err := WriteFrame(c, FrameStdinClose, nil); err != nil {
		t.Fatal(err)
	}
	in, err := io.ReadAll(inR)
	if err != nil || string(in) != "typed" {
		t.Errorf("stdin = %q, %v", in, err)
	}

	// wait and stop block until the final exit.
	waited := make(chan string, 2)
	go func() { waited <- request(t, sock, "wait") }()
	go func() { waited <- request(t, sock, "stop 15 1000") }()
	time.Sleep(50 * time.Millisecond)
	m.mu.Lock()
	m.st.ExitCode = 7
	stopping := m.stopping && m.st.StoppedByUser
	m.mu.Unlock()
	close(m.done)
	m.closeClients(7)
	got := []string{<-waited, <-waited}
	if !(got[0] == "ok 7" && got[1] == "ok" || got[0] == "ok" && got[1] == "ok 7") {
		t.Errorf("wait, stop = %q", got)
	}
	if !stopping {
		t.Errorf("stop did not mark the container stopped by the user")
	}
	br := bufio.NewReader(c)
	var frames []string
	for {
		typ, p, err := ReadFrame(br, nil)
		if err != nil {
			break
		}
		if typ == FrameExit {
			code, _ := ExitCode(p)
			frames = append(frames, "exit "+strconv.Itoa(code))
			continue
		}
		frames = append(frames, strconv.Itoa(int(typ))+" "+string(p))
	}
	if diff := cmp.Diff([]string{"1 out\n", "2 err\n", "exit 7"}, frames); diff != "" {
		t.Errorf("attach frames: %s", diff)
	}
}

func TestStateJSON(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 6789, time.UTC)
	st := State{Status: statusRunning, Pid: 42, ExitCode: 137, OOMKilled: true, Error: "bad <thing>\n",
		StartedAt: ts, FinishedAt: ts.Add(time.Second), RestartCount: 3, StoppedByUser: true, MonitorPid: 41,
		Health: &Health{Status: healthUnhealthy, FailingStreak: 2, Log: []HealthResult{
			{Start: ts, End: ts.Add(time.Millisecond), ExitCode: 1, Output: "nope\n"}}}}
	got, err := ParseState(st.AppendJSON(nil))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(st, got); diff != "" {
		t.Error(diff)
	}
	if got := string((&State{Status: statusCreated}).AppendJSON(nil)); got != `{"status":"created","exitCode":0}` {
		t.Errorf("created state = %s", got)
	}
}

func TestBackoff(t *testing.T) {
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond}
	for i, w := range want {
		if got := backoff(i); got != w {
			t.Errorf("backoff(%d) = %v, want %v", i, got, w)
		}
	}
	if got := backoff(100); got != time.Minute {
		t.Errorf("backoff(100) = %v, want 1m cap", got)
	}
}

func TestCheckRestart(t *testing.T) {
	for _, ok := range []string{"", "no", "always", "unless-stopped", "on-failure", "on-failure:3"} {
		if err := CheckRestart(ok); err != nil {
			t.Errorf("CheckRestart(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"on-failure:x", "on-failure:-1", "always:2", "sometimes"} {
		if err := CheckRestart(bad); err == nil {
			t.Errorf("CheckRestart(%q) accepted", bad)
		}
	}
}
