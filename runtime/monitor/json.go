package monitor

// A small JSON encoder and decoder for the few documents the monitor reads and writes
// (config.json, state.json, log lines). encoding/json would add about 0.5 MB to the binary,
// and with it ~0.7 MiB to every monitor's RSS.

import (
	"errors"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

var errSyntax = errors.New("invalid JSON")

// number is a JSON number, kept as its text.
type number string

// appendString appends s as a JSON string, escaped as encoding/json does (HTML-safe).
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendTime appends t as encoding/json does (RFC 3339 with nanoseconds, quoted).
func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// decoder parses one JSON document into map[string]any, []any, string, number, bool and nil.
type decoder struct {
	s   []byte
	i   int
	err error
}

func parseJSON(b []byte) (any, error) {
	d := &decoder{s: b}
	v := d.value(0)
	d.space()
	if d.err == nil && d.i != len(d.s) {
		d.err = errSyntax
	}
	if d.err != nil {
		return nil, d.err
	}
	return v, nil
}

func (d *decoder) space() {
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *decoder) fail() any {
	if d.err == nil {
		d.err = errSyntax
	}
	d.i = len(d.s)
	return nil
}

func (d *decoder) literal(word string, v any) any {
	if len(d.s)-d.i < len(word) || string(d.s[d.i:d.i+len(word)]) != word {
		return d.fail()
	}
	d.i += len(word)
	return v
}

func (d *decoder) value(depth int) any {
	d.space()
	if d.i >= len(d.s) || depth > 64 {
		return d.fail()
	}
	switch c := d.s[d.i]; {
	case c == '{':
		d.i++
		m := map[string]any{}
		d.space()
		if d.i < len(d.s) && d.s[d.i] == '}' {
			d.i++
			return m
		}
		for d.err == nil {
			d.space()
			if d.i >= len(d.s) || d.s[d.i] != '"' {
				return d.fail()
			}
			k := d.str()
			d.space()
			if d.i >= len(d.s) || d.s[d.i] != ':' {
				return d.fail()
			}
			d.i++
			m[k] = d.value(depth + 1)
			d.space()
			if d.i >= len(d.s) {
				return d.fail()
			}
			if d.s[d.i] == '}' {
				d.i++
				return m
			}
			if d.s[d.i] != ',' {
				return d.fail()
			}
			d.i++
		}
		return nil
	case c == '[':
		d.i++
		var a []any
		d.space()
		if d.i < len(d.s) && d.s[d.i] == ']' {
			d.i++
			return []any{}
		}
		for d.err == nil {
			a = append(a, d.value(depth+1))
			d.space()
			if d.i >= len(d.s) {
				return d.fail()
			}
			if d.s[d.i] == ']' {
				d.i++
				return a
			}
			if d.s[d.i] != ',' {
				return d.fail()
			}
			d.i++
		}
		return nil
	case c == '"':
		return d.str()
	case c == 't':
		return d.literal("true", true)
	case c == 'f':
		return d.literal("false", false)
	case c == 'n':
		return d.literal("null", nil)
	case c == '-' || c >= '0' && c <= '9':
		j := d.i
		for j < len(d.s) {
			c := d.s[j]
			if c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
				j++
				continue
			}
			break
		}
		n := number(d.s[d.i:j])
		d.i = j
		return n
	}
	return d.fail()
}

// str parses a string at d.i (the opening quote).
func (d *decoder) str() string {
	d.i++
	start := d.i
	// Fast path: no escapes.
	for d.i < len(d.s) {
		c := d.s[d.i]
		if c == '"' {
			s := string(d.s[start:d.i])
			d.i++
			return s
		}
		if c == '\\' || c < 0x20 {
			break
		}
		d.i++
	}
	b := append([]byte(nil), d.s[start:d.i]...)
	for d.i < len(d.s) {
		c := d.s[d.i]
		switch {
		case c == '"':
			d.i++
			return string(b)
		case c < 0x20:
			d.fail()
			return ""
		case c != '\\':
			b = append(b, c)
			d.i++
			continue
		}
		if d.i+1 >= len(d.s) {
			break
		}
		e := d.s[d.i+1]
		d.i += 2
		switch e {
		case '"', '\\', '/':
			b = append(b, e)
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r, ok := d.hex4()
			if !ok {
				d.fail()
				return ""
			}
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if d.i+1 < len(d.s) && d.s[d.i] == '\\' && d.s[d.i+1] == 'u' {
					save := d.i
					d.i += 2
					if x, ok := d.hex4(); ok {
						r2 = x
					} else {
						d.i = save
					}
				}
				if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
					r = dec
				} else {
					r = utf8.RuneError
				}
			}
			b = utf8.AppendRune(b, r)
		default:
			d.fail()
			return ""
		}
	}
	d.fail()
	return ""
}

func (d *decoder) hex4() (rune, bool) {
	if d.i+4 > len(d.s) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(d.s[d.i:d.i+4]), 16, 32)
	if err != nil {
		return 0, false
	}
	d.i += 4
	return rune(n), true
}

// Accessors for decoded objects; a missing or mistyped member gives the zero value.

type object map[string]any

func (o object) str(k string) string {
	s, _ := o[k].(string)
	return s
}

func (o object) int(k string) int64 {
	n, _ := o[k].(number)
	v, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(string(n), 64)
		if ferr != nil {
			return 0
		}
		return int64(f)
	}
	return v
}

func (o object) bool(k string) bool {
	b, _ := o[k].(bool)
	return b
}

func (o object) obj(k string) object {
	m, _ := o[k].(map[string]any)
	return m
}

func (o object) strs(k string) []string {
	a, _ := o[k].([]any)
	if a == nil {
		return nil
	}
	out := make([]string, 0, len(a))
	for _, v := range a {
		s, _ := v.(string)
		out = append(out, s)
	}
	return out
}

func (o object) time(k string) time.Time {
	s, _ := o[k].(string)
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}
