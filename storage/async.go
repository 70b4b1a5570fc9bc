package storage

import "io"

// asyncWriter hands writes to one goroutine (hashing and writing the blob copy) so that
// unpacking and hashing run on two cores. Write copies p; Close waits for the goroutine and
// returns the first error of the underlying writer. The goroutine never outlives Close.
type asyncWriter struct {
	ch   chan []byte
	free chan []byte
	done chan struct{}
	err  error
}

const asyncBuf = 256 << 10 // 4 of these per layer; fresh memory costs page faults, so keep them small

func newAsyncWriter(w io.Writer) *asyncWriter {
	a := &asyncWriter{ch: make(chan []byte, 4), free: make(chan []byte, 4), done: make(chan struct{})}
	for i := 0; i < 4; i++ {
		a.free <- make([]byte, asyncBuf)
	}
	go func() {
		defer close(a.done)
		for b := range a.ch {
			if a.err == nil {
				_, a.err = w.Write(b)
			}
			a.free <- b[:cap(b)]
		}
	}()
	return a
}

func (a *asyncWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		b := <-a.free
		c := copy(b, p)
		a.ch <- b[:c]
		p = p[c:]
	}
	return n, nil
}

// Close flushes and stops the goroutine; it must be called exactly once.
func (a *asyncWriter) Close() error {
	close(a.ch)
	<-a.done
	return a.err
}
