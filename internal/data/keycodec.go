package data

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"
)

// Key values (partition and sort) become one token of a NATS subject, so
// that a partition is the subject wildcard "<partition>.>". A token may hold
// only [-/_=.a-zA-Z0-9] (KV key rules) minus '.', its separator, and the KV
// keys of one partition must sort like the values they encode.
//
// A value is first turned into bytes that sort correctly (a type tag, then
// an order-preserving form), then into base64 over an alphabet that is in
// ASCII order. Base64 with zero-filled trailing bits and no padding
// preserves byte order: the bit string of a prefix is a prefix of the bit
// string, and the first differing bit sits in the first differing
// character. Lengths map one to one (ceil(8n/6) is injective), so decoding
// is exact, and Strict decoding refuses non-canonical trailing bits.
const sortableAlphabet = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"

var tokenEncoding = base64.NewEncoding(sortableAlphabet).WithPadding(base64.NoPadding).Strict()

// Type tags: numbers sort before strings, as in the encoded bytes.
const (
	tagNumber = 0x01
	tagString = 0x02
)

// Limits of key values, in bytes of UTF-8 (strings). With both at their
// limits a subject stays well under NATS's 4 KiB control line.
const (
	MaxPartitionKeyBytes = 1024
	MaxSortKeyBytes      = 1024
)

// KeyValue is a key attribute's value: a string or a number.
type KeyValue struct {
	IsNum bool
	Str   string
	Num   float64
}

func (v KeyValue) String() string {
	if v.IsNum {
		return formatNum(v.Num)
	}
	return v.Str
}

// JSON returns the value as JSON.
func (v KeyValue) JSON() json.RawMessage {
	if v.IsNum {
		return json.RawMessage(formatNum(v.Num))
	}
	b, _ := json.Marshal(v.Str)
	return b
}

// MarshalJSON writes the value as a JSON string or number.
func (v KeyValue) MarshalJSON() ([]byte, error) { return v.JSON(), nil }

func formatNum(f float64) string {
	b, _ := json.Marshal(f)
	return string(b)
}

// Compare orders values as their tokens do: numbers before strings,
// numbers numerically, strings by bytes.
func (v KeyValue) Compare(w KeyValue) int {
	switch {
	case v.IsNum && !w.IsNum:
		return -1
	case !v.IsNum && w.IsNum:
		return 1
	case v.IsNum:
		switch {
		case v.Num < w.Num:
			return -1
		case v.Num > w.Num:
			return 1
		}
		return 0
	}
	return strings.Compare(v.Str, w.Str)
}

// ParseKeyValue reads a key attribute's JSON value. Only strings and finite
// numbers may be keys. Numbers are compared as float64: two numbers equal
// as float64 are the same key (integers are exact up to 2^53).
func ParseKeyValue(raw json.RawMessage) (KeyValue, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return KeyValue{}, fmt.Errorf("is missing")
	}
	switch c := raw[0]; {
	case c == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return KeyValue{}, fmt.Errorf("is not a valid JSON string")
		}
		return KeyValue{Str: s}, nil
	case c == '-' || ('0' <= c && c <= '9'):
		var f float64
		if err := json.Unmarshal(raw, &f); err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return KeyValue{}, fmt.Errorf("is not a finite number")
		}
		if f == 0 {
			f = 0 // one zero: -0 and 0 are the same key
		}
		return KeyValue{IsNum: true, Num: f}, nil
	}
	return KeyValue{}, fmt.Errorf("must be a string or a number, not %s", jsonKind(raw))
}

func jsonKind(raw json.RawMessage) string {
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "that"
}

// checkKeyValue applies the size and encoding rules of a key value.
func checkKeyValue(v KeyValue, limit int) error {
	if v.IsNum {
		return nil
	}
	if !utf8.ValidString(v.Str) {
		return fmt.Errorf("is not valid UTF-8")
	}
	if len(v.Str) > limit {
		return fmt.Errorf("is %d bytes, the limit is %d", len(v.Str), limit)
	}
	return nil
}

// EncodeToken returns the order-preserving subject token of v.
func EncodeToken(v KeyValue) string {
	var raw []byte
	if v.IsNum {
		raw = make([]byte, 9)
		raw[0] = tagNumber
		bits := math.Float64bits(v.Num)
		if bits>>63 == 1 {
			bits = ^bits // negative: reverse their order
		} else {
			bits |= 1 << 63 // positive: above every negative
		}
		binary.BigEndian.PutUint64(raw[1:], bits)
	} else {
		raw = make([]byte, 1+len(v.Str))
		raw[0] = tagString
		copy(raw[1:], v.Str)
	}
	return tokenEncoding.EncodeToString(raw)
}

// DecodeToken is the inverse of EncodeToken.
func DecodeToken(tok string) (KeyValue, error) {
	raw, err := tokenEncoding.DecodeString(tok)
	if err != nil || len(raw) == 0 {
		return KeyValue{}, fmt.Errorf("bad key token %q", truncate(tok, 40))
	}
	switch raw[0] {
	case tagNumber:
		if len(raw) != 9 {
			return KeyValue{}, fmt.Errorf("bad number key token %q", truncate(tok, 40))
		}
		bits := binary.BigEndian.Uint64(raw[1:])
		if bits>>63 == 1 {
			bits &^= 1 << 63
		} else {
			bits = ^bits
		}
		f := math.Float64frombits(bits)
		if math.IsNaN(f) || math.IsInf(f, 0) || (f == 0 && math.Signbit(f)) {
			return KeyValue{}, fmt.Errorf("bad number key token %q", truncate(tok, 40))
		}
		return KeyValue{IsNum: true, Num: f}, nil
	case tagString:
		return KeyValue{Str: string(raw[1:])}, nil
	}
	return KeyValue{}, fmt.Errorf("bad key token %q", truncate(tok, 40))
}

// kvKey is the KV key of an item: the partition token, then the sort
// token after a dot when the table has a sort key.
func kvKey(pk KeyValue, sk *KeyValue) string {
	if sk == nil {
		return EncodeToken(pk)
	}
	return EncodeToken(pk) + "." + EncodeToken(*sk)
}

// splitKVKey decodes a KV key back to its values.
func splitKVKey(key string, hasSort bool) (pk KeyValue, sk *KeyValue, err error) {
	pt, st, found := strings.Cut(key, ".")
	if found != hasSort {
		return pk, nil, fmt.Errorf("key %q does not match the table's key schema", truncate(key, 60))
	}
	if pk, err = DecodeToken(pt); err != nil {
		return pk, nil, err
	}
	if hasSort {
		v, err := DecodeToken(st)
		if err != nil {
			return pk, nil, err
		}
		sk = &v
	}
	return pk, sk, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
