package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// errSpoolStopped ends a spoolReader when the reader's result is no longer wanted (the layer
// turned out to be in the store already) or the writer failed.
var errSpoolStopped = errors.New("spool stopped")

// spool lets one goroutine read a blob file while another is still writing it. The writer
// hashes and appends every byte to the blob (blobWriter), then publishes how far the file is
// complete; readers never read past that point. Because the reader sees exactly the bytes
// that were hashed and stored, the unpacked tree, the blob and the digest always agree, even
// if the source changes while it is read. The writer runs ahead of the (slower) unpacking, so
// its digest is known early: an import of content the store already has stops unpacking as
// soon as the hash is done.
type spool struct {
	bw      *blobWriter
	mu      sync.Mutex
	cond    *sync.Cond
	n       int64 // bytes written and readable
	done    bool  // writer finished (err says how)
	err     error
	stopped bool // readers must stop
}

func newSpool(bw *blobWriter) *spool {
	sp := &spool{bw: bw}
	sp.cond = sync.NewCond(&sp.mu)
	return sp
}

// fill copies r into the blob until EOF, publishing progress to readers, and returns the
// number of bytes copied. It checks ctx between chunks.
func (sp *spool) fill(ctx context.Context, r io.Reader) (int64, error) {
	buf := make([]byte, 1<<20)
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			sp.finish(err)
			return total, err
		}
		k, rerr := io.ReadFull(r, buf)
		if k > 0 {
			if _, err := sp.bw.Write(buf[:k]); err != nil {
				err = fmt.Errorf("write layer blob: %w", err)
				sp.finish(err)
				return total, err
			}
			total += int64(k)
			sp.mu.Lock()
			sp.n = total
			stopped := sp.stopped
			sp.mu.Unlock()
			sp.cond.Broadcast()
			if stopped {
				sp.finish(errSpoolStopped)
				return total, errSpoolStopped
			}
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

// startWriteback asks the kernel to start writing the complete blob out (no wait), so that
// the final sync finds little left. Called once the blob is known to be new: the data of a
// blob that is then discarded never reaches the disk.
func (sp *spool) startWriteback() {
	unix.SyncFileRange(int(sp.bw.f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
}

// reader returns a reader of the blob from the start that waits for the writer.
func (sp *spool) reader() io.Reader { return &spoolReader{sp: sp, f: sp.bw.f} }

type spoolReader struct {
	sp  *spool
	f   *os.File
	off int64
}

func (r *spoolReader) Read(p []byte) (int, error) {
	sp := r.sp
	sp.mu.Lock()
	for r.off >= sp.n && !sp.done && !sp.stopped {
		sp.cond.Wait()
	}
	n, done, err, stopped := sp.n, sp.done, sp.err, sp.stopped
	sp.mu.Unlock()
	if stopped {
		return 0, errSpoolStopped
	}
	if r.off >= n {
		if done && err == nil {
			return 0, io.EOF
		}
		return 0, errSpoolStopped
	}
	if avail := n - r.off; int64(len(p)) > avail {
		p = p[:avail]
	}
	k, err := r.f.ReadAt(p, r.off)
	r.off += int64(k)
	if err == io.EOF && k > 0 {
		err = nil
	}
	return k, err
}
