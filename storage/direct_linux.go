package storage

import (
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// Large blobs (layer tarballs) are written with O_DIRECT: the bytes go from berth's buffers to
// the disk without first being copied into newly allocated page-cache pages. Filling fresh
// page cache is the single largest cost of writing a file on the VMs berth is measured on
// (600 MB: 1.3 s of system time buffered, 0.1 s with O_DIRECT; `dd` on the CI VM), and nobody
// reads a layer blob soon after it is stored (push and save do, much later). The unpacked
// layer is still written through the page cache: containers read it right away.
//
// The file is written in directChunk pieces at aligned offsets by directJobs goroutines, so
// hashing and the disk overlap; the last piece is padded to the alignment and the file truncated to
// its real length at the end. A filesystem that refuses O_DIRECT (at open or at the first
// write) gets ordinary writes instead.

const (
	directChunk = 1 << 20 // bytes per write; a multiple of directAlign
	directAlign = 4096    // buffer address, offset and length alignment for O_DIRECT
	directQueue = 4       // chunks in flight besides the one being filled
	directJobs  = 3       // concurrent writes: a virtual disk is much faster at queue depth > 1
)

type directWriter struct {
	fd    int // opened with O_DIRECT
	plain int // the same file without O_DIRECT (fallback writes and reads)

	cur  []byte // the chunk being filled (page-aligned: mmap)
	curN int
	off  int64 // file offset of cur

	queue chan directPiece
	free  chan []byte
	bufs  [][]byte // every buffer, returned to pool by close
	pool  *alignedPool
	done  chan struct{}

	mu      sync.Mutex
	cond    *sync.Cond
	direct  bool            // O_DIRECT writes work (false after EINVAL: plain writes)
	landed  map[int64]int64 // completed pieces past written: offset -> end
	written int64           // the file is complete up to here
	err     error           // first write error
	closed  bool            // the queue is closed
	ended   bool            // the goroutine is gone and written is final
}

type directPiece struct {
	buf []byte // len is a multiple of directAlign
	off int64
}

// newDirectWriter opens path (which the caller created, empty) for O_DIRECT writes; plain is
// the caller's ordinary descriptor of the same file. It fails if the filesystem refuses
// O_DIRECT.
func newDirectWriter(path string, plain int, pool *alignedPool) (*directWriter, error) {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	d := &directWriter{fd: fd, plain: plain, pool: pool, queue: make(chan directPiece, directQueue), free: make(chan []byte, directQueue+1), done: make(chan struct{})}
	d.cond = sync.NewCond(&d.mu)
	for i := 0; i < directQueue+1; i++ {
		b, err := pool.get()
		if err != nil {
			d.unmap()
			unix.Close(fd)
			return nil, err
		}
		d.bufs = append(d.bufs, b)
		d.free <- b
	}
	d.cur = <-d.free
	d.direct, d.landed = true, map[int64]int64{}
	var wg sync.WaitGroup
	for i := 0; i < directJobs; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.run()
		}()
	}
	go func() {
		wg.Wait()
		close(d.done)
	}()
	return d, nil
}

func (d *directWriter) run() {
	for p := range d.queue {
		d.mu.Lock()
		failed, direct := d.err != nil, d.direct
		d.mu.Unlock()
		var err error
		if !failed {
			if direct {
				err = pwriteAll(d.fd, p.buf, p.off)
				if errors.Is(err, unix.EINVAL) { // accepted at open, refused on write (some filesystems)
					d.mu.Lock()
					d.direct = false
					d.mu.Unlock()
					err = pwriteAll(d.plain, p.buf, p.off)
				}
			} else {
				err = pwriteAll(d.plain, p.buf, p.off)
			}
		}
		d.mu.Lock()
		if err != nil && d.err == nil {
			d.err = fmt.Errorf("write blob: %w", err)
		}
		if d.err == nil {
			d.landed[p.off] = p.off + int64(len(p.buf))
			for end, ok := d.landed[d.written]; ok; end, ok = d.landed[d.written] {
				delete(d.landed, d.written)
				d.written = end
			}
		}
		d.mu.Unlock()
		d.cond.Broadcast()
		d.free <- p.buf[:cap(p.buf)]
	}
}

func pwriteAll(fd int, b []byte, off int64) error {
	for len(b) > 0 {
		n, err := unix.Pwrite(fd, b, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}

// write copies p into the chunk being filled, handing full chunks to the writer goroutine.
func (d *directWriter) write(p []byte) error {
	for len(p) > 0 {
		c := copy(d.cur[d.curN:], p)
		d.curN += c
		p = p[c:]
		if d.curN == len(d.cur) {
			if err := d.flushCur(len(d.cur)); err != nil {
				return err
			}
		}
	}
	return nil
}

// flushCur queues the first n bytes of cur (n aligned) and takes a free chunk.
func (d *directWriter) flushCur(n int) error {
	d.mu.Lock()
	err := d.err
	d.mu.Unlock()
	if err != nil {
		return err
	}
	d.queue <- directPiece{buf: d.cur[:n], off: d.off}
	d.off += int64(n)
	d.cur, d.curN = <-d.free, 0
	return nil
}

// finish writes what is left (padded to the alignment), waits for the writer goroutine and
// truncates the file to size. It must be called once, after the last write.
func (d *directWriter) finish(size int64) error {
	var err error
	if d.curN > 0 {
		n := (d.curN + directAlign - 1) / directAlign * directAlign
		clear(d.cur[d.curN:n])
		err = d.flushCur(n)
	}
	d.stop(size)
	d.mu.Lock()
	if d.err != nil {
		err = d.err
	}
	d.mu.Unlock()
	if err != nil {
		return err
	}
	if err := unix.Ftruncate(d.plain, size); err != nil {
		return fmt.Errorf("write blob: %w", err)
	}
	return nil
}

// stop ends the writer goroutine (idempotent). size >= 0 is the blob's final size (the padding
// of the last piece is not content).
func (d *directWriter) stop(size int64) {
	d.mu.Lock()
	closed := d.closed
	d.closed = true
	d.mu.Unlock()
	if closed {
		return
	}
	close(d.queue)
	<-d.done
	d.mu.Lock()
	if d.err == nil && size >= 0 {
		d.written = size
	}
	d.ended = true
	d.mu.Unlock()
	d.cond.Broadcast()
}

// close stops the goroutine and releases the descriptor and buffers (not the file).
func (d *directWriter) close() {
	d.stop(-1)
	if d.fd >= 0 {
		unix.Close(d.fd)
		d.fd = -1
	}
	d.unmap()
}

func (d *directWriter) unmap() {
	for _, b := range d.bufs {
		d.pool.put(b)
	}
	d.bufs = nil
}

// alignedPool hands out page-aligned buffers of directChunk bytes for O_DIRECT I/O and keeps
// up to alignedKeep returned ones for reuse: first touches of fresh memory are expensive (a
// page fault per 4 KiB, and more under a hypervisor), so a pull reuses the buffers of its
// first layers for the later ones. Close unmaps everything.
type alignedPool struct {
	mu   sync.Mutex
	free [][]byte
}

const alignedKeep = 24

func (p *alignedPool) get() ([]byte, error) {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		b := p.free[n-1]
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return b, nil
	}
	p.mu.Unlock()
	b, err := unix.Mmap(-1, 0, directChunk, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		return nil, fmt.Errorf("blob buffer: %w", err)
	}
	return b, nil
}

func (p *alignedPool) put(b []byte) {
	b = b[:cap(b)]
	p.mu.Lock()
	if len(p.free) < alignedKeep {
		p.free = append(p.free, b)
		b = nil
	}
	p.mu.Unlock()
	if b != nil {
		unix.Munmap(b)
	}
}

func (p *alignedPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range p.free {
		unix.Munmap(b)
	}
	p.free = nil
}
