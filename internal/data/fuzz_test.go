package data

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// FuzzKeyOrder checks that tokens round trip and sort exactly as the
// values they encode, for strings and numbers alike.
func FuzzKeyOrder(f *testing.F) {
	f.Add("a", "b", 1.5, -2.0)
	f.Add("", "\x00", 0.0, math.SmallestNonzeroFloat64)
	f.Add("日本", "é", math.MaxFloat64, -math.MaxFloat64)
	f.Add("a.b", "a", 1e300, 1e-300)
	f.Fuzz(func(t *testing.T, s1, s2 string, n1, n2 float64) {
		vals := []KeyValue{{Str: s1}, {Str: s2}}
		for _, n := range []float64{n1, n2} {
			if !math.IsNaN(n) && !math.IsInf(n, 0) {
				if n == 0 {
					n = 0
				}
				vals = append(vals, KeyValue{IsNum: true, Num: n})
			}
		}
		for _, v := range vals {
			tok := EncodeToken(v)
			if tok == "" || strings.ContainsAny(tok, ".*> ") {
				t.Fatalf("token %q of %v is not one subject token", tok, v)
			}
			back, err := DecodeToken(tok)
			if err != nil || back != v {
				t.Fatalf("round trip of %#v: got %#v, %v", v, back, err)
			}
		}
		for _, a := range vals {
			for _, b := range vals {
				want := a.Compare(b)
				got := strings.Compare(EncodeToken(a), EncodeToken(b))
				if want != got {
					t.Fatalf("order of %#v and %#v: tokens compare %d, values %d", a, b, got, want)
				}
			}
		}
	})
}

// FuzzDecodeToken: any input either fails or re-encodes to itself.
func FuzzDecodeToken(f *testing.F) {
	f.Add("-")
	f.Add("0V")
	f.Add(EncodeToken(KeyValue{Str: "x"}))
	f.Add(EncodeToken(KeyValue{IsNum: true, Num: -3}))
	f.Fuzz(func(t *testing.T, tok string) {
		v, err := DecodeToken(tok)
		if err != nil {
			return
		}
		if again := EncodeToken(v); again != tok {
			t.Fatalf("%q decodes to %#v, which encodes to %q", tok, v, again)
		}
	})
}

// FuzzParseCondition: the parser never panics, and what it accepts
// compiles or fails cleanly, and re-parses from its structured form.
func FuzzParseCondition(f *testing.F) {
	for _, s := range []string{`>= "2024"`, `created between 1 and 5`, `begins_with "img/"`, `= -1.5e3`, `sk < "a\"b"`, `between "a" and`, `<=`, `x`, `"x" = 1`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		attr, c, err := ParseCondition(s)
		if err != nil {
			return
		}
		if c == nil || attr == ">" {
			t.Fatalf("%q: accepted without a condition", s)
		}
		if !json.Valid(c.Value) || (c.Op == "between" && !json.Valid(c.Value2)) {
			t.Fatalf("%q: operands %q %q are not JSON", s, c.Value, c.Value2)
		}
		cc, err := compileCondition(c)
		if err != nil {
			return
		}
		cc.match(EncodeToken(KeyValue{Str: "probe"}))
		cc.match(EncodeToken(KeyValue{IsNum: true, Num: 1}))
	})
}

func TestParseCondition(t *testing.T) {
	for _, tc := range []struct {
		in, attr, op, v, v2 string
		bad                 bool
		quote               bool // the error says to quote a string
	}{
		{in: `>= "2024"`, op: ">=", v: `"2024"`},
		{in: `created between 1 and 5`, attr: "created", op: "between", v: "1", v2: "5"},
		{in: `begins_with "img/"`, op: "begins_with", v: `"img/"`},
		{in: `sk=-1`, attr: "sk", op: "=", v: "-1"},
		{in: `BETWEEN "a" AND "b"`, op: "between", v: `"a"`, v2: `"b"`},
		{in: `sk ~ 1`, bad: true},
		{in: `> {"a":1}`, bad: true},
		{in: `between 1`, bad: true},
		{in: `= 1 2`, bad: true},
		{in: ``, bad: true},
		{in: `>= 2024-05`, bad: true, quote: true},
		{in: `= ada`, bad: true, quote: true},
	} {
		attr, c, err := ParseCondition(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("%q: accepted %+v", tc.in, c)
			} else if strings.Contains(err.Error(), "double quotes") != tc.quote {
				t.Errorf("%q: %v (a hint to quote a string: %v wanted)", tc.in, err, tc.quote)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if attr != tc.attr || c.Op != tc.op || string(c.Value) != tc.v || string(c.Value2) != tc.v2 {
			t.Errorf("%q: got %q %q %s %s", tc.in, attr, c.Op, c.Value, c.Value2)
		}
	}
}

func TestParseRange(t *testing.T) {
	for _, tc := range []struct {
		h             string
		start, length int64
		err           error
	}{
		{h: "bytes=0-9", start: 0, length: 10},
		{h: "bytes=5-", start: 5, length: 95},
		{h: "bytes=-10", start: 90, length: 10},
		{h: "bytes=90-1000", start: 90, length: 10},
		{h: "bytes=-1000", start: 0, length: 100},
		{h: "bytes=100-", err: ErrInvalidRange},
		{h: "bytes=-0", err: ErrInvalidRange},
		{h: "bytes=9-5", err: errInvalid},
		{h: "items=0-1", err: errInvalid},
		{h: "bytes=0-1,3-4", err: errInvalid},
		{h: "bytes=+1-2", err: errInvalid},
	} {
		r, err := ParseRange(tc.h, 100)
		switch {
		case tc.err == ErrInvalidRange:
			if err == nil || !strings.Contains(err.Error(), "not satisfiable") {
				t.Errorf("%s: err = %v, want invalid range", tc.h, err)
			}
		case tc.err != nil:
			if err == nil || strings.Contains(err.Error(), "not satisfiable") {
				t.Errorf("%s: err = %v, want a field error", tc.h, err)
			}
		case err != nil || r.Start != tc.start || r.Length != tc.length:
			t.Errorf("%s: got %+v %v, want %d+%d", tc.h, r, err, tc.start, tc.length)
		}
	}
}

var errInvalid = errors.New("any field error") // a marker for the table above

// FuzzParseRange: a range that parses lies inside the object and is not
// empty; one that does not is refused with an error, never a panic.
func FuzzParseRange(f *testing.F) {
	for _, h := range []string{"bytes=0-9", "bytes=5-", "bytes=-10", "bytes=90-1000", "bytes=-0", "bytes=9-5", "bytes= 1 - 2 ", "bytes=9223372036854775807-"} {
		f.Add(h, int64(100))
	}
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 {
			size = -(size + 1)
		}
		r, err := ParseRange(h, size)
		if err != nil {
			if r != nil {
				t.Fatalf("%q of %d: a range and an error", h, size)
			}
			return
		}
		if r.Start < 0 || r.Length < 1 || r.Start > size-r.Length {
			t.Fatalf("%q of %d: %+v lies outside the object", h, size, r)
		}
	})
}

// FuzzTopLevel checks the attribute scanner of puts against decoding the
// object into a map, and the fast key parser against ParseKeyValue.
func FuzzTopLevel(f *testing.F) {
	for _, s := range []string{
		`{"pk":"a","sk":1,"x":{"pk":2},"y":[1,"]",{"z":"}"}]}`,
		`{ "pk" : "a\"b" , "s\u006b" : -1.5e3 , "pk":"last" }`,
		`{"pk":null,"sk":true,"ttl":12.5}`, `{}`, `[1]`, `"s"`, `{"pk":"é","sk":"\ud83d\ude00"}`,
		`{"pk":"a\\","sk":1e400}`, `{"pk":-0,"sk":0.0000}`,
	} {
		f.Add(s, "pk", "sk")
	}
	f.Fuzz(func(t *testing.T, doc, n1, n2 string) {
		if !json.Valid([]byte(doc)) {
			return
		}
		var m map[string]json.RawMessage
		mapErr := json.Unmarshal([]byte(doc), &m)
		vals := make([]json.RawMessage, 2)
		ok := topLevel([]byte(doc), []string{n1, n2}, vals)
		if isObj := mapErr == nil && m != nil; ok != isObj {
			t.Fatalf("%s: topLevel says object %v, json.Unmarshal %v (%v)", doc, ok, isObj, mapErr)
		}
		if !ok {
			return
		}
		for i, n := range []string{n1, n2} {
			want, has := m[n]
			if n == "" {
				want, has = nil, false
			}
			if (vals[i] != nil) != has || string(vals[i]) != string(want) {
				t.Fatalf("%s: %q is %q, want %q (present %v)", doc, n, vals[i], want, has)
			}
			if !has {
				continue
			}
			got, gerr := parseKeyValueFast(vals[i])
			wantKV, werr := ParseKeyValue(want)
			if (gerr == nil) != (werr == nil) || got != wantKV {
				t.Fatalf("%s: key value %q: fast %#v, %v; want %#v, %v", doc, want, got, gerr, wantKV, werr)
			}
		}
	})
}

// FuzzParseAck: any answer to a publish is read without a panic, and
// JetStream's acknowledgements and refusals are read exactly.
func FuzzParseAck(f *testing.F) {
	f.Add([]byte(`{"stream":"KV_nimbus_t_a","seq":42}`))
	f.Add([]byte(`{"stream":"KV_nimbus_t_a","domain":"hub","seq":7,"duplicate":true}`))
	f.Add([]byte(`{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 4"},"stream":"KV_nimbus_t_a","seq":0}`))
	f.Add([]byte(`{"seq":1}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, b []byte) {
		seq, err := parseAck(b)
		var ack struct {
			Error  *jetstream.APIError `json:"error"`
			Stream string              `json:"stream"`
			Seq    uint64              `json:"seq"`
		}
		if json.Unmarshal(b, &ack) != nil || !json.Valid(b) {
			return // not JSON: anything but a panic will do
		}
		switch {
		case ack.Error != nil:
			var apiErr *jetstream.APIError
			if !errors.As(err, &apiErr) || apiErr.ErrorCode != ack.Error.ErrorCode {
				t.Fatalf("%s: err = %v, want the API error %v", b, err, ack.Error)
			}
		case ack.Stream != "" && err == nil && seq != ack.Seq:
			t.Fatalf("%s: seq = %d, want %d", b, seq, ack.Seq)
		}
	})
}

// FuzzCheckConditions: any conditional headers give the object, 304 or
// 412, never a panic or another error.
func FuzzCheckConditions(f *testing.F) {
	f.Add(`"abc"`, `W/"abc", "x"`, "Sun, 29 Nov 2026 10:00:00 GMT", "")
	f.Add("*", "", "", "Sun, 29 Nov 2026 09:00:00 GMT")
	info := &ObjectInfo{ETag: "abc", Modified: time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)}
	f.Fuzz(func(t *testing.T, match, noneMatch, modSince, unmodSince string) {
		h := http.Header{}
		for name, v := range map[string]string{"If-Match": match, "If-None-Match": noneMatch, "If-Modified-Since": modSince, "If-Unmodified-Since": unmodSince} {
			if v != "" {
				h.Set(name, v)
			}
		}
		if err := CheckConditions(h, info); err != nil && !errors.Is(err, ErrNotModified) && !errors.Is(err, ErrPreconditionFailed) {
			t.Fatalf("%v: %v", h, err)
		}
	})
}
