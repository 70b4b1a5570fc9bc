package monitor

import (
	"encoding/binary"
	"testing"
)

func TestValidProgram(t *testing.T) {
	rec := func(a, b uint32) []byte {
		out := make([]byte, 8)
		binary.LittleEndian.PutUint32(out, a)
		binary.LittleEndian.PutUint32(out[4:], b)
		return out
	}
	good := append(rec(0, ProgramMagic), rec(6, 0x7fff0000)...) // header + RET ALLOW
	if !ValidProgram(good) {
		t.Fatal("a header and one instruction is a program")
	}
	tooLong := make([]byte, 8*(MaxFilterLen+2))
	copy(tooLong, rec(0, ProgramMagic))
	for name, b := range map[string][]byte{
		"empty":        nil,
		"header only":  rec(0, ProgramMagic),
		"wrong magic":  append(rec(0, 1), rec(6, 0)...),
		"torn record":  good[:len(good)-1],
		"over BPF max": tooLong,
	} {
		if ValidProgram(b) {
			t.Errorf("%s: accepted", name)
		}
	}
}
