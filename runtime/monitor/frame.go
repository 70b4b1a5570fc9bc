package monitor

import (
	"errors"
	"io"
	"strconv"
)

// Frame types of an attach connection. Every frame is 1 type byte, a 4-byte big-endian length
// and the payload.
const (
	FrameStdin      = 0
	FrameStdout     = 1
	FrameStderr     = 2
	FrameExit       = 3 // payload: 4-byte exit code
	FrameResize     = 4 // payload: width, height as 2-byte values
	FrameStdinClose = 5
)

// MaxFrame is the largest payload ReadFrame accepts.
const MaxFrame = 1 << 20

// ErrFrameTooLarge is returned by ReadFrame for a frame over MaxFrame.
var ErrFrameTooLarge = errors.New("attach frame too large")

// WriteFrame writes one frame with a single Write.
func WriteFrame(w io.Writer, typ byte, p []byte) error {
	b := make([]byte, 5+len(p))
	b[0] = typ
	putUint32(b[1:], uint32(len(p)))
	copy(b[5:], p)
	_, err := w.Write(b)
	return err
}

// ReadFrame reads one frame, into buf when it fits.
func ReadFrame(r io.Reader, buf []byte) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := uint32(hdr[1])<<24 | uint32(hdr[2])<<16 | uint32(hdr[3])<<8 | uint32(hdr[4])
	if n > MaxFrame {
		return 0, nil, &frameSizeError{n}
	}
	if int(n) > cap(buf) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, nil, err
	}
	return hdr[0], buf, nil
}

type frameSizeError struct{ n uint32 }

func (e *frameSizeError) Error() string {
	return "attach frame of " + strconv.FormatUint(uint64(e.n), 10) + " bytes: " + ErrFrameTooLarge.Error()
}

func (e *frameSizeError) Unwrap() error { return ErrFrameTooLarge }

// ExitPayload encodes an exit code for a FrameExit frame.
func ExitPayload(code int) []byte {
	var p [4]byte
	putUint32(p[:], uint32(int32(code)))
	return p[:]
}

// ResizePayload encodes a terminal size for a FrameResize frame.
func ResizePayload(width, height uint16) []byte {
	return []byte{byte(width >> 8), byte(width), byte(height >> 8), byte(height)}
}

// ExitCode decodes a FrameExit payload.
func ExitCode(p []byte) (int, bool) {
	if len(p) != 4 {
		return 0, false
	}
	return int(int32(uint32(p[0])<<24 | uint32(p[1])<<16 | uint32(p[2])<<8 | uint32(p[3]))), true
}

func putUint32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
}
