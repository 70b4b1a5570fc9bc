package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"golang.org/x/sys/unix"
)

// errSpoolStopped ends a spoolReader when the reader's result is no longer wanted (the layer
// turned out to be in the store already) or the writer failed.
var errSpoolStopped = errors.New("spool stopped")

// spoolKeep is how many pieces (of directChunk bytes) a spool keeps in memory for its reader;
// spoolAhead is how many dropped pieces it reads back ahead of the reader.
const (
	spoolKeep  = 16
	spoolAhead = 4
)

// spool lets one goroutine unpack a blob while another is still reading, hashing and storing
// it. The writer (fill) reads the source in directChunk pieces, hashes and stores each one
// (blobWriter) and only then publishes it; the reader never gets bytes that were not hashed
// and stored, so the unpacked tree, the blob and the digest always agree, even if the source
// changes while it is read. The writer never waits for the (slower) unpacking, so its digest
// is known early: an import of content the store already has stops unpacking as soon as the
// hash is done. Published pieces wait in memory for the reader, up to spoolKeep of them; when
// the writer is further ahead, the oldest are dropped and a read-ahead goroutine reads them
// back from the blob file (with O_DIRECT: from the disk, never through newly allocated page
// cache, which is what makes writing files expensive) just before the reader needs them.
type spool struct {
	bw      *blobWriter
	mu      sync.Mutex
	cond    *sync.Cond
	pieces  [][]byte // piece k: bytes [k*directChunk, ...); nil once dropped or taken
	lens    []int    // length of piece k
	taken   []bool   // piece k was handed to a reader from memory
	kept    int      // pieces in memory
	rk      int      // the piece the reader takes next
	free    [][]byte // buffers to reuse
	done    bool     // writer finished (err says how)
	err     error
	stopped bool // readers must stop

	// Read-ahead of dropped pieces.
	back     map[int][]byte // dropped piece -> its bytes read back
	backErr  error
	aligned  [][]byte // free page-aligned buffers for back
	mapped   [][]byte // every page-aligned buffer (returned to the store's pool by close)
	fetching bool     // the read-ahead goroutine runs
	closed   bool
	fetched  chan struct{} // closed when the read-ahead goroutine is gone
}

func newSpool(bw *blobWriter) *spool {
	sp := &spool{bw: bw, back: map[int][]byte{}, fetched: make(chan struct{})}
	sp.cond = sync.NewCond(&sp.mu)
	return sp
}

func (sp *spool) buffer() []byte {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if n := len(sp.free); n > 0 {
		b := sp.free[n-1]
		sp.free = sp.free[:n-1]
		return b
	}
	return make([]byte, directChunk)
}

// fill copies r into the blob until EOF, publishing every piece to readers, and returns the
// number of bytes copied. It checks ctx between pieces.
func (sp *spool) fill(ctx context.Context, r io.Reader) (int64, error) {
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			sp.finish(err)
			return total, err
		}
		buf := sp.buffer()
		k, rerr := io.ReadFull(r, buf)
		if k > 0 {
			if _, err := sp.bw.Write(buf[:k]); err != nil {
				err = fmt.Errorf("write layer blob: %w", err)
				sp.finish(err)
				return total, err
			}
			total += int64(k)
			sp.mu.Lock()
			sp.pieces = append(sp.pieces, buf[:k])
			sp.lens = append(sp.lens, k)
			sp.taken = append(sp.taken, false)
			sp.kept++
			for i := sp.rk; sp.kept > spoolKeep && i < len(sp.pieces); i++ {
				if b := sp.pieces[i]; b != nil { // the reader is far behind: it gets this one read back
					sp.pieces[i] = nil
					sp.kept--
					sp.free = append(sp.free, b[:cap(b)])
					if !sp.fetching && !sp.closed {
						sp.fetching = true
						go sp.readAhead(i)
					}
				}
			}
			stopped := sp.stopped
			sp.mu.Unlock()
			sp.cond.Broadcast()
			if stopped {
				sp.finish(errSpoolStopped)
				return total, errSpoolStopped
			}
		} else {
			sp.mu.Lock()
			sp.free = append(sp.free, buf)
			sp.mu.Unlock()
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			sp.finish(nil)
			return total, nil
		}
		if rerr != nil {
			err := fmt.Errorf("read layer: %w", rerr)
			sp.finish(err)
			return total, err
		}
	}
}

// readAhead reads dropped pieces back from the blob file, in order from k, at most spoolAhead
// ahead of the reader.
func (sp *spool) readAhead(k int) {
	defer close(sp.fetched)
	for {
		sp.mu.Lock()
		for {
			if sp.stopped || sp.closed || sp.backErr != nil {
				sp.mu.Unlock()
				return
			}
			if k < sp.rk || k < len(sp.pieces) && sp.taken[k] {
				k++ // the reader has it already
				continue
			}
			if k >= len(sp.pieces) {
				if sp.done {
					sp.mu.Unlock()
					return
				}
			} else if sp.pieces[k] == nil && len(sp.back) < spoolAhead {
				break // dropped: read it back
			}
			sp.cond.Wait()
		}
		var buf []byte
		if n := len(sp.aligned); n > 0 {
			buf, sp.aligned = sp.aligned[n-1], sp.aligned[:n-1]
		}
		n := sp.lens[k]
		sp.mu.Unlock()
		var err error
		if buf == nil {
			if buf, err = sp.bw.s.aligned.get(); err == nil {
				sp.mu.Lock()
				sp.mapped = append(sp.mapped, buf)
				sp.mu.Unlock()
			}
		}
		var data []byte
		if err == nil {
			data, err = sp.bw.readChunk(buf, int64(k), n)
		}
		sp.mu.Lock()
		if err != nil {
			sp.backErr = err
		} else {
			sp.back[k] = data
		}
		sp.mu.Unlock()
		sp.cond.Broadcast()
		k++
	}
}

func (sp *spool) finish(err error) {
	sp.mu.Lock()
	sp.done, sp.err = true, err
	sp.mu.Unlock()
	sp.cond.Broadcast()
}

// stop makes readers (and the writer) return errSpoolStopped.
func (sp *spool) stop() {
	sp.mu.Lock()
	sp.stopped = true
	sp.mu.Unlock()
	sp.cond.Broadcast()
}

// close ends the read-ahead and frees its buffers. Call it once nobody reads any more.
func (sp *spool) close() {
	sp.mu.Lock()
	sp.closed = true
	fetching := sp.fetching
	sp.mu.Unlock()
	sp.cond.Broadcast()
	if fetching {
		<-sp.fetched
	}
	for _, b := range sp.mapped {
		sp.bw.s.aligned.put(b)
	}
	sp.mapped, sp.aligned, sp.back = nil, nil, nil
}

// startWriteback asks the kernel to start writing the complete blob out (no wait), so that
// the final sync finds little left. Called once the blob is known to be new: the data of a
// blob that is then discarded never reaches the disk. (An O_DIRECT blob is on the disk
// already.)
func (sp *spool) startWriteback() {
	if sp.bw.direct == nil {
		unix.SyncFileRange(int(sp.bw.f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
	}
}

// reader returns a reader of the blob from the start that waits for the writer. Use one
// reader at a time (a new one starts again from the beginning).
func (sp *spool) reader() io.Reader { return &spoolReader{sp: sp} }

type spoolReader struct {
	sp    *spool
	k     int    // next piece
	cur   []byte // unread part of the current piece
	own   []byte // the current piece's buffer, if it came from memory
	ahead []byte // the current piece's buffer, if the read-ahead read it back
	buf   []byte // page-aligned buffer for pieces read again (a second reader)
}

func (r *spoolReader) Read(p []byte) (int, error) {
	sp := r.sp
	for len(r.cur) == 0 {
		sp.mu.Lock()
		if r.own != nil {
			sp.free = append(sp.free, r.own[:cap(r.own)])
			r.own = nil
		}
		if r.ahead != nil {
			sp.aligned = append(sp.aligned, r.ahead[:cap(r.ahead)])
			r.ahead = nil
			sp.cond.Broadcast()
		}
		var b []byte
		again := false
		for {
			if sp.stopped {
				sp.mu.Unlock()
				return 0, errSpoolStopped
			}
			if r.k >= len(sp.pieces) {
				if !sp.done {
					sp.cond.Wait()
					continue
				}
				err := sp.err
				sp.mu.Unlock()
				if err == nil {
					return 0, io.EOF
				}
				return 0, errSpoolStopped
			}
			if b = sp.pieces[r.k]; b != nil {
				sp.pieces[r.k] = nil
				sp.taken[r.k] = true
				sp.kept--
				r.own = b
				break
			}
			if sp.taken[r.k] || r.k < sp.rk {
				again = true // read before by another reader: read it again
				break
			}
			if d, ok := sp.back[r.k]; ok {
				delete(sp.back, r.k)
				b, r.ahead = d, d
				break
			}
			if sp.backErr != nil {
				err := sp.backErr
				sp.mu.Unlock()
				return 0, err
			}
			sp.cond.Wait() // dropped: the read-ahead brings it
		}
		n := sp.lens[r.k]
		if r.k >= sp.rk {
			sp.rk = r.k + 1
		}
		sp.mu.Unlock()
		sp.cond.Broadcast()
		if again {
			if r.buf == nil {
				buf, err := sp.bw.s.aligned.get()
				if err != nil {
					return 0, err
				}
				r.buf = buf
				sp.mu.Lock()
				sp.mapped = append(sp.mapped, buf)
				sp.mu.Unlock()
			}
			data, err := sp.bw.readChunk(r.buf, int64(r.k), n)
			if err != nil {
				return 0, err
			}
			b = data
		}
		r.cur = b
		r.k++
	}
	c := copy(p, r.cur)
	r.cur = r.cur[c:]
	return c, nil
}
