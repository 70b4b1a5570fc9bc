package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	"golang.org/x/term"

	"github.com/berth-dev/berth/engine"
)

// --- progress renderers ---
//
// --progress picks one of four renderers of engine.Progress:
//
//	plain  one line per event: "Container proj-web-1 Started"
//	json   one JSON object per event
//	quiet  nothing
//	tty    Docker Compose's block: a header and one line per resource, redrawn in place
//
// auto (the default) is tty when stderr is a terminal whose TERM is not dumb, plain otherwise.

// composeNewProgress returns the renderer that --progress asks for, writing to a.stderr.
func composeNewProgress(a *app) engine.Progress {
	mode := a.opts.Progress
	fd, isTerm := -1, false
	if f, ok := a.stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fd, isTerm = int(f.Fd()), true
	}
	dumb := os.Getenv("TERM") == "dumb"
	if mode == "auto" || mode == "" {
		mode = "plain"
		if isTerm && !dumb {
			mode = "tty"
		}
	}
	switch mode {
	case "quiet":
		return engine.NopProgress{}
	case "json":
		return &jsonProgress{w: a.stderr}
	case "tty":
		cfg := ttyConfig{
			Now:      time.Now,
			Interval: 100 * time.Millisecond,
			Unicode:  !dumb && localeIsUTF8(os.Getenv),
			Color:    isTerm && !dumb && os.Getenv("NO_COLOR") == "",
		}
		if isTerm {
			cfg.Size = func() (int, int, error) { return term.GetSize(fd) }
		}
		return newTTYProgress(a.stderr, cfg)
	}
	return &plainProgress{w: a.stderr}
}

// progressOut returns where a command should print text while prog may be drawing: through
// the tty renderer, which prints it above its block, or straight to w for the others.
func progressOut(prog engine.Progress, w io.Writer) io.Writer {
	if t, ok := prog.(*ttyProgress); ok {
		return t
	}
	return w
}

// localeIsUTF8 reports whether the locale (LC_ALL, else LC_CTYPE, else LANG) uses UTF-8.
func localeIsUTF8(getenv func(string) string) bool {
	for _, k := range []string{"LC_ALL", "LC_CTYPE", "LANG"} {
		if v := strings.ToLower(getenv(k)); v != "" {
			return strings.Contains(v, "utf-8") || strings.Contains(v, "utf8")
		}
	}
	return false
}

// composeNoun is what a resource is called in progress output.
func composeNoun(ev engine.Event) string {
	r := ev.Resource
	switch {
	case strings.HasPrefix(r, "network:"):
		return "Network"
	case strings.HasPrefix(r, "volume:"):
		return "Volume"
	case strings.HasPrefix(r, "image:"):
		return "Image"
	case strings.HasPrefix(r, "project:"):
		return "Project"
	case strings.HasPrefix(r, "service:") && strings.Count(r, ":") == 1:
		return "Service"
	}
	return "Container"
}

// plainProgress prints one line per event.
type plainProgress struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *plainProgress) Start(string) {}
func (p *plainProgress) Done(error)   {}

func (p *plainProgress) Event(ev engine.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "%s %s %s\n", composeNoun(ev), ev.Name, ev.Text)
}

// jsonProgress prints one JSON object per event.
type jsonProgress struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *jsonProgress) Start(string) {}
func (p *jsonProgress) Done(error)   {}

func (p *jsonProgress) Event(ev engine.Event) {
	m := map[string]any{"time": ev.Time.Format(time.RFC3339Nano), "resource": ev.Resource, "kind": ev.Kind,
		"name": ev.Name, "status": ev.Status, "text": ev.Text}
	if ev.Err != nil {
		m["error"] = ev.Err.Error()
	}
	b, _ := json.Marshal(m)
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "%s\n", b)
}

// ttyConfig configures the tty renderer; tests inject the clock and the size.
type ttyConfig struct {
	Now func() time.Time
	// Size returns the terminal's width and height; nil or an error means 80 columns and no
	// height limit.
	Size func() (width, height int, err error)
	// Interval is the redraw period while a resource is in progress; 0 redraws only on events.
	Interval time.Duration
	// Unicode selects ✔ ✘ and a braille spinner; otherwise plain ASCII.
	Unicode bool
	// Color colours the marks.
	Color bool
}

type lineState int

const (
	lineWorking lineState = iota
	lineDone
	lineWarned
	lineFailed
	lineStopped // still in progress when the operation ended
)

// ttyLine is one resource's line in the block.
type ttyLine struct {
	label      string // "Container proj-web-1"
	text       string // "Starting", "Started", an error message
	state      lineState
	start, end time.Time // first event; the event that finished it (zero while working)
	labelCells int

	// A finished line's rows, for the label width and limit they were laid out with.
	rows     []string
	rowsSize [2]int
}

// ttyProgress draws Docker Compose's progress block: a header counting finished resources,
// then one line per resource in first-seen order with a spinner or a mark, its status and
// its elapsed time, redrawn in place on each event and every Interval while something is in
// progress.
//
// Lifecycle: the first resource event opens a block; Done (or the next Start) draws its
// final frame and closes it, so that what follows prints below. Events about the project
// itself (warnings such as "waiting for the lock") and text given to Write are printed above
// the block, which is then redrawn beneath them.
type ttyProgress struct {
	w   io.Writer
	cfg ttyConfig

	mu      sync.Mutex
	lines   []*ttyLine
	byRes   map[string]*ttyLine
	shown   []string // the open block's rows as on screen; the cursor is at the start of the row below
	gen     int      // bumped when the ticker is stopped or re-armed, so a stale tick does nothing
	timer   *time.Timer
	partial []byte       // text given to Write that does not end its line yet
	buf     bytes.Buffer // the frame being built, reused
}

var _ engine.Progress = (*ttyProgress)(nil)

func newTTYProgress(w io.Writer, cfg ttyConfig) *ttyProgress {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &ttyProgress{w: w, cfg: cfg, byRes: map[string]*ttyLine{}}
}

// Start closes a block left open by events sent without Start/Done.
func (p *ttyProgress) Start(string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.finish()
}

// Done draws the final frame and stops the ticker.
func (p *ttyProgress) Done(error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.finish()
}

func (p *ttyProgress) Event(ev engine.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	text := ev.Text
	if text == "" && ev.Err != nil {
		text = ev.Err.Error()
	}
	if ev.Resource == "" || strings.HasPrefix(ev.Resource, "project:") {
		p.above([]byte(" " + p.markOf(stateOf(ev.Status)) + " " + sanitize(text) + "\n"))
		return
	}
	now := p.cfg.Now()
	l := p.byRes[ev.Resource]
	if l == nil {
		l = &ttyLine{start: now}
		p.byRes[ev.Resource] = l
		p.lines = append(p.lines, l)
	}
	name := ev.Name
	if name == "" {
		name = ev.Resource
	}
	l.label = sanitize(composeNoun(ev) + " " + name)
	l.labelCells = cells(l.label)
	l.text = sanitize(text)
	l.rows = nil
	if ev.Status != engine.StatusInfo {
		l.state = stateOf(ev.Status)
		l.end = time.Time{}
		if l.state != lineWorking {
			l.end = now
		}
	}
	b := p.buffer()
	p.render(b, false)
	p.flush(b)
	p.arm()
}

// Write prints complete lines of b above the block (a trailing partial line waits for its
// end, or for Done), so that warnings do not tear the block.
func (p *ttyProgress) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.partial = append(p.partial, b...)
	i := bytes.LastIndexByte(p.partial, '\n')
	if i < 0 {
		return len(b), nil
	}
	lines := p.partial[:i+1]
	p.partial = append([]byte(nil), p.partial[i+1:]...)
	if err := p.above(lines); err != nil {
		return 0, err
	}
	return len(b), nil
}

func stateOf(status string) lineState {
	switch status {
	case engine.StatusDone:
		return lineDone
	case engine.StatusError:
		return lineFailed
	case engine.StatusWarning:
		return lineWarned
	}
	return lineWorking
}

// above erases the block, prints text (whole lines) and redraws the block below it.
func (p *ttyProgress) above(text []byte) error {
	b := p.buffer()
	p.erase(b)
	b.Write(text)
	p.render(b, false)
	return p.flush(b)
}

// finish ends the open block: final frame, ticker stopped, state reset.
func (p *ttyProgress) finish() {
	p.stop()
	b := p.buffer()
	if len(p.partial) > 0 {
		p.erase(b)
		b.Write(p.partial)
		b.WriteByte('\n')
		p.partial = nil
	}
	now := p.cfg.Now()
	for _, l := range p.lines {
		if l.state == lineWorking {
			l.state, l.end, l.rows = lineStopped, now, nil
		}
	}
	p.render(b, true)
	p.flush(b)
	p.lines, p.byRes, p.shown = nil, map[string]*ttyLine{}, nil
}

// arm starts the ticker if something is in progress and it is not running.
func (p *ttyProgress) arm() {
	if p.cfg.Interval <= 0 || p.timer != nil || !p.working() {
		return
	}
	p.gen++
	gen := p.gen
	p.timer = time.AfterFunc(p.cfg.Interval, func() { p.tick(gen) })
}

func (p *ttyProgress) stop() {
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
	p.gen++
}

// tick redraws (spinners, times) and re-arms while something is still in progress. It stops
// by itself once nothing is, so a command that never calls Done leaves no ticker redrawing
// over what it prints next.
func (p *ttyProgress) tick(gen int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if gen != p.gen {
		return
	}
	p.timer = nil
	if !p.working() {
		return
	}
	b := p.buffer()
	p.render(b, false)
	p.flush(b)
	p.arm()
}

// buffer returns the emptied frame buffer.
func (p *ttyProgress) buffer() *bytes.Buffer {
	p.buf.Reset()
	return &p.buf
}

// flush writes the frame built in b, if any. Progress has nowhere to report a failed write
// to a terminal; Write passes the error on.
func (p *ttyProgress) flush(b *bytes.Buffer) error {
	if b.Len() == 0 {
		return nil
	}
	_, err := p.w.Write(b.Bytes())
	return err
}

func (p *ttyProgress) working() bool {
	for _, l := range p.lines {
		if l.state == lineWorking {
			return true
		}
	}
	return false
}

// erase moves the cursor to the top of the block and clears it.
func (p *ttyProgress) erase(b *bytes.Buffer) {
	if len(p.shown) > 0 {
		fmt.Fprintf(b, "\r\x1b[%dA\x1b[J", len(p.shown))
		p.shown = p.shown[:0]
	}
}

// render appends to b a frame that overwrites the block in place, skipping the rows that
// are on screen already (most of them: an event changes the header and one line).
func (p *ttyProgress) render(b *bytes.Buffer, final bool) {
	if len(p.lines) == 0 {
		return
	}
	width, height := 80, 0
	if p.cfg.Size != nil {
		if w, h, err := p.cfg.Size(); err == nil && w > 0 {
			width, height = w, h
		}
	}
	rows := p.layout(width, height, final)
	if slices.Equal(rows, p.shown) {
		return
	}
	if len(p.shown) > 0 {
		fmt.Fprintf(b, "\r\x1b[%dA", len(p.shown))
	}
	skip := 0
	for i, r := range rows {
		if i < len(p.shown) && p.shown[i] == r {
			skip++
			continue
		}
		if skip > 0 {
			fmt.Fprintf(b, "\x1b[%dB", skip)
			skip = 0
		}
		b.WriteString(r)
		b.WriteString("\x1b[K\n")
	}
	if skip > 0 {
		fmt.Fprintf(b, "\x1b[%dB", skip)
	}
	if len(rows) < len(p.shown) {
		b.WriteString("\x1b[J")
	}
	p.shown = append(p.shown[:0], rows...)
}

// maxErrorRows bounds how many rows a failed line's message wraps to; the command prints the
// whole error when it exits.
const maxErrorRows = 4

// layout returns the frame's rows, each narrower than width. Unless final, a block taller
// than the terminal shows what is in progress or failed and the latest finished lines, and
// counts the rest, so that the cursor can always reach the block's top.
func (p *ttyProgress) layout(width, height int, final bool) []string {
	now := p.cfg.Now()
	limit := max(width-1, 1) // the last column would make some terminals wrap early
	finished, labelW := 0, 0
	for _, l := range p.lines {
		if l.state != lineWorking && l.state != lineStopped {
			finished++
		}
		labelW = max(labelW, l.labelCells)
	}
	labelW = min(labelW, max(limit/2, 8))
	header := truncate(fmt.Sprintf("[+] Running %d/%d", finished, len(p.lines)), limit, p.ellipsis())
	perLine := make([][]string, len(p.lines))
	total := 1
	for i, l := range p.lines {
		perLine[i] = p.lineRows(l, labelW, limit, now)
		total += len(perLine[i])
	}
	rows := []string{header}
	if final || height <= 0 || total <= height-1 {
		for _, r := range perLine {
			rows = append(rows, r...)
		}
		return rows
	}
	budget := height - 3 // header and the "more" row
	var order []int
	for i, l := range p.lines {
		if l.state == lineWorking || l.state == lineFailed {
			order = append(order, i)
		}
	}
	var rest []int
	for i, l := range p.lines {
		if l.state != lineWorking && l.state != lineFailed {
			rest = append(rest, i)
		}
	}
	slices.SortStableFunc(rest, func(a, b int) int { return p.lines[b].end.Compare(p.lines[a].end) }) // latest first
	order = append(order, rest...)
	shown := make([]bool, len(p.lines))
	used, hidden := 0, len(p.lines)
	for _, i := range order {
		if n := len(perLine[i]); used+n <= budget {
			shown[i] = true
			used += n
			hidden--
		}
	}
	if budget >= 0 {
		rows = append(rows, truncate(fmt.Sprintf("   %s %d more", p.ellipsis(), hidden), limit, p.ellipsis()))
	}
	for i, ok := range shown {
		if ok {
			rows = append(rows, perLine[i]...)
		}
	}
	return rows
}

// lineRows lays out one resource: " ✔ Container proj-web-1  Started      0.4s". A failed
// line's message wraps under the status column; other lines are cut to the width.
func (p *ttyProgress) lineRows(l *ttyLine, labelW, limit int, now time.Time) []string {
	if l.rows != nil && l.rowsSize == [2]int{labelW, limit} {
		return l.rows
	}
	rows := p.layoutLine(l, labelW, limit, now)
	if l.state != lineWorking {
		l.rows, l.rowsSize = rows, [2]int{labelW, limit}
	}
	return rows
}

func (p *ttyProgress) layoutLine(l *ttyLine, labelW, limit int, now time.Time) []string {
	end := l.end
	if l.state == lineWorking {
		end = now
	}
	timer := fmt.Sprintf(" %.1fs", max(end.Sub(l.start), 0).Seconds())
	const markCols = 3 // " ✔ "
	bodyW := limit - markCols - cells(timer)
	if bodyW < 12 { // too narrow for the timer
		timer, bodyW = "", max(limit-markCols, 1)
	}
	ell := p.ellipsis()
	label := truncate(l.label, labelW, ell)
	body := label + strings.Repeat(" ", labelW-cells(label)) + "  " + l.text
	var first string
	var more []string
	if l.state == lineFailed && cells(body) > bodyW {
		indent := labelW + 2
		if bodyW-indent < 16 {
			indent = 2
		}
		first, body = splitCells(body, bodyW)
		for body != "" {
			var chunk string
			if len(more) == maxErrorRows-2 {
				chunk, body = truncate(body, bodyW-indent, ell), ""
			} else {
				chunk, body = splitCells(body, bodyW-indent)
			}
			more = append(more, strings.Repeat(" ", markCols+indent)+chunk)
		}
	} else {
		first = truncate(body, bodyW, ell)
	}
	row := " " + p.mark(l, now) + " " + first
	if timer != "" {
		row += strings.Repeat(" ", bodyW-cells(first)) + timer
	}
	return append([]string{row}, more...)
}

var (
	spinUnicode = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}
	spinASCII   = []string{"-", "\\", "|", "/"}
)

// mark is the line's one-column mark: a spinner while working, ✔ ✘ ! after.
func (p *ttyProgress) mark(l *ttyLine, now time.Time) string {
	if l.state == lineWorking {
		spin := spinASCII
		if p.cfg.Unicode {
			spin = spinUnicode
		}
		return spin[int(max(now.Sub(l.start), 0)/(100*time.Millisecond))%len(spin)]
	}
	return p.markOf(l.state)
}

func (p *ttyProgress) markOf(s lineState) string {
	var m, color string
	switch s {
	case lineDone:
		m, color = "+", "32"
		if p.cfg.Unicode {
			m = "✔"
		}
	case lineFailed:
		m, color = "x", "31"
		if p.cfg.Unicode {
			m = "✘"
		}
	case lineWarned:
		m, color = "!", "33"
	default:
		return "-"
	}
	if p.cfg.Color {
		return "\x1b[" + color + "m" + m + "\x1b[0m"
	}
	return m
}

func (p *ttyProgress) ellipsis() string {
	if p.cfg.Unicode {
		return "…"
	}
	return "..."
}

// sanitize replaces control characters (newlines, tabs, escapes) with spaces, so that a
// line is one row and cannot move the cursor.
func sanitize(s string) string {
	if strings.IndexFunc(s, unicode.IsControl) < 0 {
		return s
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

// cellWidth is how many terminal columns r takes: 0 for combining marks, 2 for East Asian
// wide and most emoji, 1 otherwise.
func cellWidth(r rune) int {
	switch {
	case unicode.In(r, unicode.Mn, unicode.Me) || r >= 0x200B && r <= 0x200F:
		return 0
	case r >= 0x1100 && r <= 0x115F, r >= 0x2E80 && r <= 0xA4CF && r != 0x303F, r >= 0xAC00 && r <= 0xD7A3,
		r >= 0xF900 && r <= 0xFAFF, r >= 0xFE30 && r <= 0xFE4F, r >= 0xFF00 && r <= 0xFF60, r >= 0xFFE0 && r <= 0xFFE6,
		r >= 0x1F300 && r <= 0x1F64F, r >= 0x1F900 && r <= 0x1F9FF, r >= 0x20000 && r <= 0x3FFFD:
		return 2
	}
	return 1
}

func cells(s string) int {
	n := 0
	for _, r := range s {
		n += cellWidth(r)
	}
	return n
}

// truncate cuts s to at most n columns, ending it with ell when cut.
func truncate(s string, n int, ell string) string {
	if cells(s) <= n {
		return s
	}
	if cells(ell) > n {
		ell = ""
	}
	head, _ := cutCells(s, n-cells(ell))
	return head + ell
}

// cutCells splits s after at most n columns.
func cutCells(s string, n int) (string, string) {
	w := 0
	for i, r := range s {
		if w+cellWidth(r) > n {
			return s[:i], s[i:]
		}
		w += cellWidth(r)
	}
	return s, ""
}

// splitCells splits s into a head of at most n columns, at a space when one is in its second
// half, and the rest without its leading spaces.
func splitCells(s string, n int) (string, string) {
	n = max(n, 1)
	head, tail := cutCells(s, n)
	if tail == "" {
		return head, ""
	}
	if i := strings.LastIndexByte(head, ' '); i > 0 && cells(head[:i]) >= n/2 && !strings.HasPrefix(tail, " ") {
		head, tail = head[:i], head[i+1:]+tail
	}
	return strings.TrimRight(head, " "), strings.TrimLeft(tail, " ")
}
