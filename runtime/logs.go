package runtime

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// The monitor (package runtime/monitor) writes a container's output to <dir>/log as JSON
// lines, rotating to log.1, log.2... (monitor.LogWriter); this file reads them back.

// logFiles lists a container's log files, oldest first.
func logFiles(dir string) []string {
	var rotated []string
	for i := 1; ; i++ {
		p := filepath.Join(dir, "log."+strconv.Itoa(i))
		if _, err := os.Stat(p); err != nil {
			break
		}
		rotated = append([]string{p}, rotated...)
	}
	return append(rotated, filepath.Join(dir, "log"))
}

func (o LogOptions) want(l LogLine) bool {
	if o.Stdout || o.Stderr {
		if l.Stream == "stdout" && !o.Stdout || l.Stream == "stderr" && !o.Stderr {
			return false
		}
	}
	if !o.Since.IsZero() && l.Time.Before(o.Since) {
		return false
	}
	if !o.Until.IsZero() && l.Time.After(o.Until) {
		return false
	}
	return true
}

// ReadLogs calls fn for the container's log lines selected by opt; with Follow it keeps
// calling fn for new lines until the container stops or ctx ends.
func (r *Runtime) ReadLogs(ctx context.Context, id string, opt LogOptions, fn func(LogLine) error) error {
	if _, err := r.config(id); err != nil {
		return err
	}
	dir := r.dir(id)
	var inotify int = -1
	if opt.Follow {
		// Watch before reading so nothing written in between is missed.
		fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
		if err == nil {
			if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_MODIFY|unix.IN_CREATE|unix.IN_MOVED_TO|unix.IN_CLOSE_WRITE); err != nil {
				unix.Close(fd)
			} else {
				inotify = fd
				defer unix.Close(fd)
			}
		}
	}
	var tail []LogLine
	emit := func(l LogLine) error {
		if !opt.want(l) {
			return nil
		}
		if opt.Tail < 0 {
			return fn(l)
		}
		if opt.Tail > 0 {
			tail = append(tail, l)
			if len(tail) > opt.Tail {
				tail = tail[1:]
			}
		}
		return nil
	}
	files := logFiles(dir)
	var cur *os.File
	var off int64
	for i, p := range files {
		f, err := os.Open(p)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return fmt.Errorf("logs: %w", err)
		}
		n, err := scanLog(f, emit)
		if err != nil {
			f.Close()
			return err
		}
		if i == len(files)-1 {
			cur, off = f, n
		} else {
			f.Close()
		}
	}
	for _, l := range tail {
		if err := fn(l); err != nil {
			return err
		}
	}
	tail = nil
	if cur != nil {
		defer func() { cur.Close() }()
	}
	if !opt.Follow {
		return nil
	}
	follow := func(l LogLine) error {
		if !opt.want(l) {
			return nil
		}
		return fn(l)
	}
	for {
		// Read what is new in the current file.
		if cur != nil {
			if _, err := cur.Seek(off, io.SeekStart); err == nil {
				n, err := scanLog(cur, follow)
				if err != nil {
					return err
				}
				off += n
			}
		}
		// Rotated? The path now names a different file.
		if st, err := os.Stat(filepath.Join(dir, "log")); err == nil && cur != nil {
			if cst, err := cur.Stat(); err == nil && !os.SameFile(st, cst) {
				// Drain the old file (now log.1), then switch.
				if _, err := cur.Seek(off, io.SeekStart); err == nil {
					if _, err := scanLog(cur, follow); err != nil {
						return err
					}
				}
				cur.Close()
				cur, off = nil, 0
			}
		}
		if cur == nil {
			if f, err := os.Open(filepath.Join(dir, "log")); err == nil {
				cur, off = f, 0
				continue
			}
		}
		st, err := r.readState(id)
		if err != nil || !st.Running() {
			if err == nil && r.monitorAlive(id) {
				// finishing up
			} else {
				if cur != nil {
					if _, err := cur.Seek(off, io.SeekStart); err == nil {
						_, _ = scanLog(cur, follow)
					}
				}
				return nil
			}
		}
		if err := waitInotify(ctx, inotify, 250*time.Millisecond); err != nil {
			return err
		}
	}
}

// waitInotify waits for an event on fd (or for d when fd < 0), or ctx.
func waitInotify(ctx context.Context, fd int, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if fd < 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
			return nil
		}
	}
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	_, _ = unix.Poll(pfd, int(d.Milliseconds()))
	var buf [4096]byte
	for {
		if n, err := unix.Read(fd, buf[:]); n <= 0 || err != nil {
			break
		}
	}
	return ctx.Err()
}

// scanLog decodes complete JSON lines from f, returning the bytes consumed.
func scanLog(f io.Reader, fn func(LogLine) error) (int64, error) {
	br := bufio.NewReaderSize(f, 64*1024)
	var n int64
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			// An incomplete last line is read again next time.
			return n, nil
		}
		n += int64(len(line))
		var l LogLine
		if json.Unmarshal(line, &l) != nil {
			continue
		}
		if err := fn(l); err != nil {
			return n, err
		}
	}
}

// Logs writes the container's log to w as plain text (stream selection, tail, since,
// timestamps and follow as in opt). Partial lines are written without a newline.
func (r *Runtime) Logs(ctx context.Context, id string, opt LogOptions, w io.Writer) error {
	return r.LogsSplit(ctx, id, opt, w, w)
}

// LogsSplit is Logs with stdout and stderr lines written to separate writers.
func (r *Runtime) LogsSplit(ctx context.Context, id string, opt LogOptions, stdout, stderr io.Writer) error {
	var buf []byte
	return r.ReadLogs(ctx, id, opt, func(l LogLine) error {
		buf = buf[:0]
		if opt.Timestamps {
			buf = l.Time.AppendFormat(buf, time.RFC3339Nano)
			buf = append(buf, ' ')
		}
		buf = append(buf, l.Text...)
		if !l.Partial {
			buf = append(buf, '\n')
		}
		w := stdout
		if l.Stream == "stderr" {
			w = stderr
		}
		_, err := w.Write(buf)
		return err
	})
}
