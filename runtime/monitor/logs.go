package monitor

import (
	"bytes"
	"os"
	"strconv"
	"sync"
	"time"
)

// Log defaults, as runtime.ContainerConfig documents them.
const (
	DefaultLogMaxSize  = 10 << 20
	DefaultLogMaxFiles = 3
	MaxLogLine         = 16 << 10 // longer lines are split into partial records
)

// LogWriter appends a container's output to <dir>/log as JSON lines
// ({"time":...,"stream":"stdout","text":...[,"partial":true]}), rotating to log.1, log.2...
// when a file would exceed its maximum size. It is safe for concurrent use.
type LogWriter struct {
	mu      sync.Mutex
	path    string
	f       *os.File
	size    int64
	max     int64 // <= 0: unlimited
	files   int
	pending [3][]byte // per stream (1 stdout, 2 stderr)
	enc     []byte
}

// OpenLogWriter opens (appending) the log file at path. maxSize 0 means the default, < 0
// unlimited; maxFiles <= 0 means the default.
func OpenLogWriter(path string, maxSize int64, maxFiles int) (*LogWriter, error) {
	if maxSize == 0 {
		maxSize = DefaultLogMaxSize
	}
	if maxFiles <= 0 {
		maxFiles = DefaultLogMaxFiles
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &LogWriter{path: path, f: f, size: st.Size(), max: maxSize, files: maxFiles}, nil
}

// Write adds output of one stream (FrameStdout or FrameStderr); complete lines are recorded at
// once, a trailing partial line waits for its end (or for Flush).
func (w *LogWriter) Write(stream int, p []byte) {
	if stream != FrameStderr {
		stream = FrameStdout
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now().UTC()
	buf := p
	if len(w.pending[stream]) > 0 {
		buf = append(w.pending[stream], p...)
	}
	for {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			break
		}
		w.record(now, stream, buf[:i], false)
		buf = buf[i+1:]
	}
	for len(buf) >= MaxLogLine {
		w.record(now, stream, buf[:MaxLogLine], true)
		buf = buf[MaxLogLine:]
	}
	w.pending[stream] = append(w.pending[stream][:0], buf...)
}

// Flush records any partial lines.
func (w *LogWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.flush()
}

func (w *LogWriter) flush() {
	now := time.Now().UTC()
	for s := range w.pending {
		if len(w.pending[s]) > 0 {
			w.record(now, s, w.pending[s], true)
			w.pending[s] = w.pending[s][:0]
		}
	}
}

func (w *LogWriter) record(t time.Time, stream int, text []byte, partial bool) {
	b := w.enc[:0]
	b = append(b, `{"time":`...)
	b = appendTime(b, t)
	if stream == FrameStderr {
		b = append(b, `,"stream":"stderr","text":`...)
	} else {
		b = append(b, `,"stream":"stdout","text":`...)
	}
	b = appendString(b, string(text))
	if partial {
		b = append(b, `,"partial":true`...)
	}
	b = append(b, "}\n"...)
	if cap(b) <= 64<<10 {
		w.enc = b
	}
	if w.max > 0 && w.size+int64(len(b)) > w.max && w.size > 0 {
		w.rotate()
	}
	if w.f == nil {
		return
	}
	n, _ := w.f.Write(b)
	w.size += int64(n)
}

func (w *LogWriter) rotate() {
	w.f.Close()
	w.f = nil
	for i := w.files - 1; i >= 1; i-- {
		src := w.path
		if i > 1 {
			src = w.path + "." + strconv.Itoa(i-1)
		}
		_ = os.Rename(src, w.path+"."+strconv.Itoa(i))
	}
	if w.files == 1 {
		_ = os.Remove(w.path)
	}
	f, err := os.OpenFile(w.path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return
	}
	w.f = f
	w.size = 0
}

// Close flushes partial lines and closes the file.
func (w *LogWriter) Close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.flush()
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
}
