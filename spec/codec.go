package spec

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"reflect"
	"sync"
)

// The load cache stores a *Project in a small binary form written by reflection over the model
// types. encoding/gob and encoding/json are not faithful for the model: gob drops empty maps and
// slices and pointers to zero values (Init: &false comes back nil), and json turns invalid UTF-8
// in strings into U+FFFD and every number in Extensions into float64. This form keeps nil apart
// from empty, pointers, exact strings and the dynamic types of Extensions values; a value it
// cannot represent is an encoding error, and the entry is not cached.

// errCodec is returned for values the codec cannot represent and for malformed input.
var errCodec = errors.New("spec: model codec")

// Tags of the dynamic types an interface value (Service.Extensions) may hold.
const (
	tagNil byte = iota
	tagString
	tagBool
	tagInt
	tagInt64
	tagUint64
	tagFloat64
	tagSlice // []any
	tagMap   // map[string]any
	tagUint
	tagFloat32
)

var (
	typeAnySlice = reflect.TypeFor[[]any]()
	typeAnyMap   = reflect.TypeFor[map[string]any]()
)

// modelShape is a digest of the Project type's shape: every type name, kind and field name
// reachable from it. It is part of the cache key, so that a change to the model's types cannot
// decode entries written for the old types even if nobody bumps loadCacheFormat.
var modelShape = sync.OnceValue(func() string {
	h := sha256.New()
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		fmt.Fprintf(h, "%s/%s;", t.String(), t.Kind())
		if seen[t] {
			return
		}
		seen[t] = true
		switch t.Kind() {
		case reflect.Struct:
			for i := range t.NumField() {
				f := t.Field(i)
				fmt.Fprintf(h, "%s:", f.Name)
				walk(f.Type)
			}
		case reflect.Map:
			walk(t.Key())
			walk(t.Elem())
		case reflect.Slice, reflect.Array, reflect.Pointer:
			if t.Kind() == reflect.Array {
				fmt.Fprintf(h, "[%d]", t.Len())
			}
			walk(t.Elem())
		}
	}
	walk(reflect.TypeFor[Project]())
	return hex.EncodeToString(h.Sum(nil))
})

// appendModel appends the binary form of v to b.
func appendModel(b []byte, v reflect.Value) ([]byte, error) {
	switch v.Kind() {
	case reflect.Bool:
		if v.Bool() {
			return append(b, 1), nil
		}
		return append(b, 0), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return binary.AppendVarint(b, v.Int()), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return binary.AppendUvarint(b, v.Uint()), nil
	case reflect.Float32, reflect.Float64:
		return binary.LittleEndian.AppendUint64(b, math.Float64bits(v.Float())), nil
	case reflect.String:
		s := v.String()
		b = binary.AppendUvarint(b, uint64(len(s)))
		return append(b, s...), nil
	case reflect.Pointer:
		if v.IsNil() {
			return append(b, 0), nil
		}
		return appendModel(append(b, 1), v.Elem())
	case reflect.Slice:
		if v.IsNil() {
			return append(b, 0), nil
		}
		b = binary.AppendUvarint(b, uint64(v.Len())+1)
		return appendElems(b, v)
	case reflect.Array:
		return appendElems(b, v)
	case reflect.Map:
		if v.IsNil() {
			return append(b, 0), nil
		}
		b = binary.AppendUvarint(b, uint64(v.Len())+1)
		var err error
		for it := v.MapRange(); it.Next(); {
			if b, err = appendModel(b, it.Key()); err != nil {
				return nil, err
			}
			if b, err = appendModel(b, it.Value()); err != nil {
				return nil, err
			}
		}
		return b, nil
	case reflect.Struct:
		t := v.Type()
		var err error
		for i := range t.NumField() {
			if !t.Field(i).IsExported() {
				return nil, fmt.Errorf("%w: unexported field %s.%s", errCodec, t, t.Field(i).Name)
			}
			if b, err = appendModel(b, v.Field(i)); err != nil {
				return nil, err
			}
		}
		return b, nil
	case reflect.Interface:
		if v.IsNil() {
			return append(b, tagNil), nil
		}
		e := v.Elem()
		tag, ok := anyTag(e.Type())
		if !ok {
			return nil, fmt.Errorf("%w: cannot store a %s", errCodec, e.Type())
		}
		return appendModel(append(b, tag), e)
	}
	return nil, fmt.Errorf("%w: cannot store a %s", errCodec, v.Type())
}

func appendElems(b []byte, v reflect.Value) ([]byte, error) {
	var err error
	for i := range v.Len() {
		if b, err = appendModel(b, v.Index(i)); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// anyTag is the tag of an interface's dynamic type; only the exact types YAML decoding yields
// are stored (a named type would come back as its underlying type).
func anyTag(t reflect.Type) (byte, bool) {
	switch t {
	case reflect.TypeFor[string]():
		return tagString, true
	case reflect.TypeFor[bool]():
		return tagBool, true
	case reflect.TypeFor[int]():
		return tagInt, true
	case reflect.TypeFor[int64]():
		return tagInt64, true
	case reflect.TypeFor[uint64]():
		return tagUint64, true
	case reflect.TypeFor[float64]():
		return tagFloat64, true
	case typeAnySlice:
		return tagSlice, true
	case typeAnyMap:
		return tagMap, true
	case reflect.TypeFor[uint]():
		return tagUint, true
	case reflect.TypeFor[float32]():
		return tagFloat32, true
	}
	return 0, false
}

func tagType(tag byte) (reflect.Type, bool) {
	switch tag {
	case tagString:
		return reflect.TypeFor[string](), true
	case tagBool:
		return reflect.TypeFor[bool](), true
	case tagInt:
		return reflect.TypeFor[int](), true
	case tagInt64:
		return reflect.TypeFor[int64](), true
	case tagUint64:
		return reflect.TypeFor[uint64](), true
	case tagFloat64:
		return reflect.TypeFor[float64](), true
	case tagSlice:
		return typeAnySlice, true
	case tagMap:
		return typeAnyMap, true
	case tagUint:
		return reflect.TypeFor[uint](), true
	case tagFloat32:
		return reflect.TypeFor[float32](), true
	}
	return nil, false
}

// modelDecoder reads what appendModel wrote. Every malformed input is an error, never a panic
// or a huge allocation: lengths are checked against the bytes left. It reads from a string, so
// that decoded strings share its memory instead of being allocated one by one.
type modelDecoder struct {
	s string
}

func (d *modelDecoder) uvarint() (uint64, error) {
	var x uint64
	for i := 0; i < len(d.s) && i < binary.MaxVarintLen64; i++ {
		c := d.s[i]
		if i == binary.MaxVarintLen64-1 && c > 1 {
			break // overflows 64 bits
		}
		x |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			d.s = d.s[i+1:]
			return x, nil
		}
	}
	return 0, fmt.Errorf("%w: bad number", errCodec)
}

func (d *modelDecoder) byte() (byte, error) {
	if len(d.s) == 0 {
		return 0, fmt.Errorf("%w: truncated", errCodec)
	}
	c := d.s[0]
	d.s = d.s[1:]
	return c, nil
}

// length reads a string's length (n bytes), or a slice's or map's (n-1 items, each at least
// one byte; 0 is nil).
func (d *modelDecoder) length() (int, error) {
	n, err := d.uvarint()
	if err != nil {
		return 0, err
	}
	if n > uint64(len(d.s))+1 {
		return 0, fmt.Errorf("%w: length %d past the end", errCodec, n)
	}
	return int(n), nil
}

// value decodes into v, which must be settable.
func (d *modelDecoder) value(v reflect.Value) error {
	switch v.Kind() {
	case reflect.Bool:
		c, err := d.byte()
		if err != nil {
			return err
		}
		if c > 1 {
			return fmt.Errorf("%w: bad bool", errCodec)
		}
		v.SetBool(c == 1)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		ux, err := d.uvarint()
		if err != nil {
			return err
		}
		x := int64(ux >> 1) // zig-zag, as binary.AppendVarint writes it
		if ux&1 != 0 {
			x = ^x
		}
		if v.OverflowInt(x) {
			return fmt.Errorf("%w: %d overflows %s", errCodec, x, v.Type())
		}
		v.SetInt(x)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		x, err := d.uvarint()
		if err != nil {
			return err
		}
		if v.OverflowUint(x) {
			return fmt.Errorf("%w: %d overflows %s", errCodec, x, v.Type())
		}
		v.SetUint(x)
	case reflect.Float32, reflect.Float64:
		if len(d.s) < 8 {
			return fmt.Errorf("%w: truncated", errCodec)
		}
		v.SetFloat(math.Float64frombits(binary.LittleEndian.Uint64([]byte(d.s[:8]))))
		d.s = d.s[8:]
	case reflect.String:
		n, err := d.length()
		if err != nil {
			return err
		}
		if n > len(d.s) {
			return fmt.Errorf("%w: truncated", errCodec)
		}
		v.SetString(d.s[:n])
		d.s = d.s[n:]
	case reflect.Pointer:
		c, err := d.byte()
		if err != nil || c == 0 {
			return err
		}
		p := reflect.New(v.Type().Elem())
		if err := d.value(p.Elem()); err != nil {
			return err
		}
		v.Set(p)
	case reflect.Slice:
		n, err := d.length()
		if err != nil || n == 0 {
			return err
		}
		s := reflect.MakeSlice(v.Type(), n-1, n-1)
		for i := range n - 1 {
			if err := d.value(s.Index(i)); err != nil {
				return err
			}
		}
		v.Set(s)
	case reflect.Array:
		for i := range v.Len() {
			if err := d.value(v.Index(i)); err != nil {
				return err
			}
		}
	case reflect.Map:
		n, err := d.length()
		if err != nil || n == 0 {
			return err
		}
		t := v.Type()
		m := reflect.MakeMapWithSize(t, n-1)
		k, e := reflect.New(t.Key()).Elem(), reflect.New(t.Elem()).Elem()
		for range n - 1 {
			k.SetZero()
			e.SetZero()
			if err := d.value(k); err != nil {
				return err
			}
			if err := d.value(e); err != nil {
				return err
			}
			m.SetMapIndex(k, e)
		}
		v.Set(m)
	case reflect.Struct:
		for i := range v.NumField() {
			if err := d.value(v.Field(i)); err != nil {
				return err
			}
		}
	case reflect.Interface:
		tag, err := d.byte()
		if err != nil || tag == tagNil {
			return err
		}
		t, ok := tagType(tag)
		if !ok {
			return fmt.Errorf("%w: bad type tag %d", errCodec, tag)
		}
		e := reflect.New(t).Elem()
		if err := d.value(e); err != nil {
			return err
		}
		v.Set(e)
	default:
		return fmt.Errorf("%w: cannot load a %s", errCodec, v.Type())
	}
	return nil
}

// encodeProject returns p's binary form.
func encodeProject(p *Project) ([]byte, error) {
	return appendModel(make([]byte, 0, 4096), reflect.ValueOf(p).Elem())
}

// decodeProject reads what encodeProject wrote; trailing bytes are an error.
func decodeProject(b []byte) (*Project, error) {
	p := &Project{}
	d := modelDecoder{s: string(b)}
	if err := d.value(reflect.ValueOf(p).Elem()); err != nil {
		return nil, err
	}
	if len(d.s) != 0 {
		return nil, fmt.Errorf("%w: %d bytes left over", errCodec, len(d.s))
	}
	return p, nil
}
