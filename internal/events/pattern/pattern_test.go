package pattern

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// ec2Event is EventBridge's documented EC2 state-change example, reshaped as
// a CloudEvent (detail under "data") plus a few fields for the operators.
const ec2Event = `{
  "specversion": "1.0",
  "id": "7bf73129-1428-4cd3-a780-95db273d1602",
  "type": "EC2 Instance State-change Notification",
  "source": "aws.ec2",
  "subject": "arn:aws:ec2:us-east-1:123456789012:instance/i-1234567890abcdef0",
  "time": "2015-11-11T21:29:54Z",
  "region": "us-east-1",
  "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-1234567890abcdef0"],
  "data": {
    "instance-id": "i-1234567890abcdef0",
    "state": "running",
    "c-count": 5,
    "d-count": 3,
    "x-limit": 301.8,
    "source-ip": "10.0.0.123",
    "ipv6": "2001:db8::1",
    "FileName": "image.PNG",
    "FilePath": "/usr/lib/libc.so",
    "flag": true,
    "nothing": null,
    "empty": "",
    "tags": ["blue", "green"],
    "nested": [[1, 2], [3]],
    "employees": [
      {"firstName": "John", "lastName": "Doe"},
      {"firstName": "Anna", "lastName": "Smith"},
      {"firstName": "Peter", "lastName": "Jones"}
    ],
    "obj": {"k": 1},
    "none": []
  }
}`

func TestMatch(t *testing.T) {
	tests := []struct {
		name    string
		pattern string
		want    bool
	}{
		// Exact values.
		{"exact string", `{"source":["aws.ec2"]}`, true},
		{"exact string list", `{"source":["aws.s3","aws.ec2"]}`, true},
		{"exact string miss", `{"source":["aws.s3"]}`, false},
		{"exact is case sensitive", `{"source":["AWS.EC2"]}`, false},
		{"doc example source+type+detail", `{"source":["aws.ec2"],"type":["EC2 Instance State-change Notification"],"data":{"state":["running"]}}`, true},
		{"AND across fields fails on one", `{"source":["aws.ec2"],"data":{"state":["stopped"]}}`, false},
		{"number by value", `{"data":{"c-count":[5.0]}}`, true},
		{"number with exponent", `{"data":{"x-limit":[3.018e2]}}`, true},
		{"number does not match string", `{"data":{"c-count":["5"]}}`, false},
		{"string does not match number", `{"data":{"state":[5]}}`, false},
		{"bool", `{"data":{"flag":[true]}}`, true},
		{"bool miss", `{"data":{"flag":[false]}}`, false},
		{"null matches null", `{"data":{"nothing":[null]}}`, true},
		{"null does not match absent", `{"data":{"absent":[null]}}`, false},
		{"empty string", `{"data":{"empty":[""]}}`, true},
		{"empty string does not match null", `{"data":{"nothing":[""]}}`, false},
		{"missing field", `{"data":{"absent":["x"]}}`, false},
		{"missing parent", `{"nope":{"x":["y"]}}`, false},
		{"leaf against object", `{"data":{"obj":[1]}}`, false},

		// Arrays in the event.
		{"array any element", `{"data":{"tags":["green"]}}`, true},
		{"array no element", `{"data":{"tags":["red"]}}`, false},
		{"resources array", `{"resources":[{"prefix":"arn:aws:ec2:"}]}`, true},
		{"nested arrays flatten", `{"data":{"nested":[3]}}`, true},
		{"array of objects", `{"data":{"employees":{"firstName":["Anna"]}}}`, true},
		{"array consistency same element", `{"data":{"employees":{"firstName":["Anna"],"lastName":["Smith"]}}}`, true},
		{"array consistency across elements", `{"data":{"employees":{"firstName":["Anna"],"lastName":["Jones"]}}}`, false},

		// prefix / suffix / equals-ignore-case.
		{"prefix", `{"time":[{"prefix":"2015-11-11"}]}`, true},
		{"prefix miss", `{"time":[{"prefix":"2017-10-02"}]}`, false},
		{"prefix only strings", `{"data":{"c-count":[{"prefix":"5"}]}}`, false},
		{"prefix ignore case", `{"source":[{"prefix":{"equals-ignore-case":"AWS."}}]}`, true},
		{"prefix ignore case miss", `{"source":[{"prefix":{"equals-ignore-case":"AWS.S"}}]}`, false},
		{"suffix", `{"data":{"FileName":[{"suffix":".PNG"}]}}`, true},
		{"suffix case sensitive", `{"data":{"FileName":[{"suffix":".png"}]}}`, false},
		{"suffix ignore case", `{"data":{"FileName":[{"suffix":{"equals-ignore-case":".png"}}]}}`, true},
		{"equals-ignore-case", `{"data":{"state":[{"equals-ignore-case":"RUNNING"}]}}`, true},
		{"equals-ignore-case miss", `{"data":{"state":[{"equals-ignore-case":"RUN"}]}}`, false},

		// wildcard.
		{"wildcard", `{"data":{"FilePath":[{"wildcard":"*/lib/*"}]}}`, true},
		{"wildcard anchored", `{"data":{"FilePath":[{"wildcard":"/usr/*.so"}]}}`, true},
		{"wildcard miss", `{"data":{"FilePath":[{"wildcard":"/opt/*"}]}}`, false},
		{"wildcard no star exact", `{"source":[{"wildcard":"aws.ec2"}]}`, true},
		{"wildcard doc example", `{"source":[{"wildcard":"aws.*2"}]}`, true},

		// anything-but.
		{"anything-but string", `{"data":{"state":[{"anything-but":"initializing"}]}}`, true},
		{"anything-but string equal", `{"data":{"state":[{"anything-but":"running"}]}}`, false},
		{"anything-but list", `{"data":{"state":[{"anything-but":["stopped","overloaded"]}]}}`, true},
		{"anything-but list hit", `{"data":{"state":[{"anything-but":["stopped","running"]}]}}`, false},
		{"anything-but number", `{"data":{"c-count":[{"anything-but":123}]}}`, true},
		{"anything-but number list hit", `{"data":{"c-count":[{"anything-but":[100,5]}]}}`, false},
		{"anything-but prefix", `{"data":{"state":[{"anything-but":{"prefix":"init"}}]}}`, true},
		{"anything-but prefix hit", `{"data":{"state":[{"anything-but":{"prefix":"run"}}]}}`, false},
		{"anything-but suffix", `{"data":{"FileName":[{"anything-but":{"suffix":".png"}}]}}`, true},
		{"anything-but suffix hit", `{"data":{"FileName":[{"anything-but":{"suffix":".PNG"}}]}}`, false},
		{"anything-but ignore case hit", `{"data":{"state":[{"anything-but":{"equals-ignore-case":"RUNNING"}}]}}`, false},
		{"anything-but ignore case list", `{"data":{"state":[{"anything-but":{"equals-ignore-case":["A","B"]}}]}}`, true},
		{"anything-but wildcard hit", `{"data":{"FilePath":[{"anything-but":{"wildcard":"*/lib/*"}}]}}`, false},
		{"anything-but absent", `{"data":{"absent":[{"anything-but":"x"}]}}`, false},
		{"anything-but array one element differs", `{"data":{"tags":[{"anything-but":"blue"}]}}`, true},
		{"anything-but array all listed", `{"data":{"tags":[{"anything-but":["blue","green"]}]}}`, false},

		// numeric.
		{"numeric range", `{"data":{"c-count":[{"numeric":[">",0,"<=",5]}]}}`, true},
		{"numeric range upper open", `{"data":{"c-count":[{"numeric":[">",0,"<",5]}]}}`, false},
		{"numeric lt", `{"data":{"d-count":[{"numeric":["<",10]}]}}`, true},
		{"numeric eq", `{"data":{"x-limit":[{"numeric":["=",3.018e2]}]}}`, true},
		{"numeric ge", `{"data":{"c-count":[{"numeric":[">=",5]}]}}`, true},
		{"numeric not on strings", `{"data":{"state":[{"numeric":[">",0]}]}}`, false},
		{"numeric array element", `{"data":{"nested":[{"numeric":[">",2.5]}]}}`, true},

		// exists.
		{"exists true", `{"data":{"c-count":[{"exists":true}]}}`, true},
		{"exists true null value", `{"data":{"nothing":[{"exists":true}]}}`, true},
		{"exists true absent", `{"data":{"absent":[{"exists":true}]}}`, false},
		{"exists false absent", `{"data":{"absent":[{"exists":false}]}}`, true},
		{"exists false present", `{"data":{"c-count":[{"exists":false}]}}`, false},
		{"exists false on object is not a leaf", `{"data":{"obj":[{"exists":false}]}}`, true},
		{"exists true on object is not a leaf", `{"data":{"obj":[{"exists":true}]}}`, false},
		{"exists false empty array", `{"data":{"none":[{"exists":false}]}}`, true},
		{"exists false under missing parent", `{"nope":{"x":[{"exists":false}]}}`, true},
		{"exists false below scalar", `{"source":{"x":[{"exists":false}]}}`, true},

		// cidr.
		{"cidr v4", `{"data":{"source-ip":[{"cidr":"10.0.0.0/24"}]}}`, true},
		{"cidr v4 miss", `{"data":{"source-ip":[{"cidr":"10.0.1.0/24"}]}}`, false},
		{"cidr unmasked prefix", `{"data":{"source-ip":[{"cidr":"10.0.0.7/8"}]}}`, true},
		{"cidr v6", `{"data":{"ipv6":[{"cidr":"2001:db8::/32"}]}}`, true},
		{"cidr not an ip", `{"data":{"state":[{"cidr":"10.0.0.0/8"}]}}`, false},

		// $or.
		{"$or first", `{"$or":[{"source":["aws.ec2"]},{"type":["x"]}]}`, true},
		{"$or second", `{"$or":[{"source":["x"]},{"data":{"state":["running"]}}]}`, true},
		{"$or none", `{"$or":[{"source":["x"]},{"type":["y"]}]}`, false},
		{"$or with and", `{"source":["aws.ec2"],"$or":[{"data":{"c-count":[{"numeric":[">",10]}]}},{"data":{"d-count":[3]}}]}`, true},
		{"$or nested in object", `{"data":{"$or":[{"state":["x"]},{"flag":[true]}]}}`, true},
		{"$or nested and", `{"source":["aws.ec2"],"$or":[{"type":["n"]},{"data":{"flag":[true]},"$or":[{"region":["x"]},{"region":["us-east-1"]}]}]}`, true},

		// Mixed value lists: any element may match.
		{"mixed list", `{"data":{"c-count":["a",{"numeric":[">",4]}]}}`, true},
		{"unicode fold", `{"data":{"state":[{"equals-ignore-case":"RUNNİNG"}]}}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Compile([]byte(tc.pattern))
			if err != nil {
				t.Fatalf("Compile(%s): %v", tc.pattern, err)
			}
			if got := p.Match([]byte(ec2Event)); got != tc.want {
				t.Errorf("Match = %v, want %v\npattern: %s", got, tc.want, tc.pattern)
			}
			// The pattern must also behave alone in a Set (index path).
			s := NewSet()
			if err := s.Add("r", p); err != nil {
				t.Fatal(err)
			}
			ids, err := s.Match([]byte(ec2Event))
			if err != nil {
				t.Fatal(err)
			}
			if got := len(ids) == 1; got != tc.want {
				t.Errorf("Set.Match = %v, want match %v", ids, tc.want)
			}
		})
	}
}

func TestMatchStrings(t *testing.T) {
	tests := []struct {
		name    string
		pattern string
		value   string
		want    bool
	}{
		{"wildcard escaped star", `{"wildcard":"a\\*b"}`, "a*b", true},
		{"wildcard escaped star literal only", `{"wildcard":"a\\*b"}`, "axb", false},
		{"wildcard escaped backslash", `{"wildcard":"a\\\\*"}`, `a\xyz`, true},
		{"wildcard star middle empty", `{"wildcard":"a*b"}`, "ab", true},
		{"wildcard overlapping tail", `{"wildcard":"*ab*ab"}`, "abab", true},
		{"wildcard overlapping tail miss", `{"wildcard":"*ab*ab"}`, "aba", false},
		{"wildcard only star", `{"wildcard":"*"}`, "", true},
		{"wildcard leading", `{"wildcard":"*.png"}`, "x.png", true},
		{"wildcard prefix then suffix overlap", `{"wildcard":"ab*ba"}`, "aba", false},
		{"prefix fold unicode", `{"prefix":{"equals-ignore-case":"ÉCO"}}`, "école", true},
		{"suffix fold unicode", `{"suffix":{"equals-ignore-case":"ÉE"}}`, "année", true},
		{"suffix fold unicode miss", `{"suffix":{"equals-ignore-case":"ÉE"}}`, "annee", false},
		{"suffix fold unicode hit", `{"suffix":{"equals-ignore-case":"ÉE"}}`, "fiancée", true},
		{"equals fold final sigma", `{"equals-ignore-case":"ΣΑΣ"}`, "σας", true},
		{"equals fold kelvin", `{"equals-ignore-case":"k"}`, "\u212a", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Compile([]byte(`{"f":[` + tc.pattern + `]}`))
			if err != nil {
				t.Fatal(err)
			}
			if got := p.MatchValue(map[string]any{"f": tc.value}); got != tc.want {
				t.Errorf("match %q against %s = %v, want %v", tc.value, tc.pattern, got, tc.want)
			}
		})
	}
}

func TestMatchValueGoTypes(t *testing.T) {
	p := MustCompile(`{"n":[{"numeric":[">",1]}],"m":[7]}`)
	for _, v := range []any{2, int64(2), uint8(2), float32(2.5), json.Number("2")} {
		if !p.MatchValue(map[string]any{"n": v, "m": json.Number("7.0")}) {
			t.Errorf("MatchValue with %T(%v) = false, want true", v, v)
		}
	}
}

func TestMatchNotObject(t *testing.T) {
	p := MustCompile(`{"a":[{"exists":false}]}`)
	for _, ev := range []string{`[]`, `"x"`, `{`, ``, `null`} {
		if p.Match([]byte(ev)) {
			t.Errorf("Match(%q) = true, want false", ev)
		}
	}
	if _, err := NewSet().Match([]byte(`[1]`)); err == nil {
		t.Error("Set.Match([1]) error = nil, want an error")
	}
	if _, err := NewSet().Match([]byte(`null`)); err == nil {
		t.Error("Set.Match(null) error = nil, want an error")
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name    string
		pattern string
		want    string // substring of the error
	}{
		{"not json", `{`, "pattern: invalid JSON"},
		{"trailing", `{"a":["b"]} x`, "trailing data"},
		{"not object", `["a"]`, "must be a JSON object"},
		{"empty", `{}`, "empty pattern"},
		{"empty nested", `{"data":{}}`, "data: empty object"},
		{"scalar leaf", `{"source":"aws.ec2"}`, `source: expected an array of values or an object, got string "aws.ec2"`},
		{"empty array", `{"data":{"x":[]}}`, "data.x: empty array"},
		{"nested array", `{"a":[["b"]]}`, "a: nested arrays"},
		{"numeric not pairs", `{"detail":{"price":[{"numeric":[">",0,"<"]}]}}`, "detail.price: numeric: expected operator/number pairs"},
		{"numeric not array", `{"detail":{"price":[{"numeric":5}]}}`, "detail.price: numeric: expected operator/number pairs"},
		{"numeric bad op", `{"p":[{"numeric":["!=",1]}]}`, `p: numeric: unknown operator "!="`},
		{"numeric string value", `{"p":[{"numeric":[">","1"]}]}`, `p: numeric: expected a number after ">"`},
		{"numeric two lower", `{"p":[{"numeric":[">",1,">=",2]}]}`, "more than one lower bound"},
		{"numeric two upper", `{"p":[{"numeric":["<",1,"<=",2]}]}`, "more than one upper bound"},
		{"numeric eq combined", `{"p":[{"numeric":["=",1,"<",2]}]}`, `"=" cannot be combined`},
		{"numeric huge", `{"p":[{"numeric":[">",1e999]}]}`, "out of range"},
		{"unknown operator", `{"p":[{"contains":"x"}]}`, `p: unknown operator "contains"`},
		{"two keys", `{"p":[{"prefix":"a","suffix":"b"}]}`, "exactly one key"},
		{"prefix number", `{"p":[{"prefix":1}]}`, "p: prefix: expected a string"},
		{"prefix bad object", `{"p":[{"prefix":{"x":"a"}}]}`, "p: prefix: expected a string or"},
		{"exists string", `{"p":[{"exists":"true"}]}`, "p: exists: expected true or false"},
		{"cidr bad", `{"p":[{"cidr":"10.0.0.0"}]}`, `p: cidr: invalid prefix "10.0.0.0"`},
		{"wildcard double star", `{"p":[{"wildcard":"a**b"}]}`, "p: wildcard: consecutive"},
		{"wildcard bad escape", `{"p":[{"wildcard":"a\\b"}]}`, "p: wildcard: a backslash"},
		{"anything-but bool", `{"p":[{"anything-but":true}]}`, "p: anything-but: expected"},
		{"anything-but empty list", `{"p":[{"anything-but":[]}]}`, "p: anything-but: empty list"},
		{"anything-but list of bool", `{"p":[{"anything-but":[true]}]}`, "list elements must be strings or numbers"},
		{"anything-but numeric", `{"p":[{"anything-but":{"numeric":[">",1]}}]}`, `anything-but: unsupported operator "numeric"`},
		{"anything-but prefix number", `{"p":[{"anything-but":{"prefix":1}}]}`, "anything-but: prefix: expected a string"},
		{"$or one alt", `{"$or":[{"a":["b"]}]}`, "$or: expected an array of at least two objects"},
		{"$or not array", `{"$or":{"a":["b"]}}`, "$or: expected an array"},
		{"$or bad alt", `{"x":{"$or":[{"a":["b"]},{"c":"d"}]}}`, "x.$or[1].c: expected an array"},
		{"$or alt not object", `{"$or":[{"a":["b"]},"c"]}`, "$or[1]: expected an object"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile([]byte(tc.pattern))
			if err == nil {
				t.Fatalf("Compile(%s) = nil error, want %q", tc.pattern, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Compile(%s) error = %q, want it to contain %q", tc.pattern, err, tc.want)
			}
			var pe *Error
			if !errors.As(err, &pe) {
				t.Errorf("error %T is not a *pattern.Error", err)
			}
		})
	}
}

func TestSet(t *testing.T) {
	s := NewSet()
	add := func(id, src string) {
		t.Helper()
		if err := s.Add(id, MustCompile(src)); err != nil {
			t.Fatal(err)
		}
	}
	add("by-type", `{"type":["order.created","order.paid"]}`)
	add("by-source", `{"source":["/shop"],"data":{"total":[{"numeric":[">",100]}]}}`)
	add("scan-prefix", `{"type":[{"prefix":"order."}]}`)
	add("other-type", `{"type":["user.created"]}`)
	add("array-field", `{"tags":["a"]}`)
	add("or", `{"$or":[{"type":["nope"]},{"subject":["s1"]}]}`)

	match := func(ev string) []string {
		t.Helper()
		ids, err := s.Match([]byte(ev))
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	got := match(`{"type":"order.created","source":"/shop","subject":"s1","tags":["a","a","b"],"data":{"total":150}}`)
	want := []string{"array-field", "by-source", "by-type", "or", "scan-prefix"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("Match = %v, want %v", got, want)
	}
	if got := match(`{"type":"user.created"}`); strings.Join(got, ",") != "other-type" {
		t.Errorf("Match = %v, want [other-type]", got)
	}

	// Replacing a rule re-files it under its new discriminator.
	add("by-type", `{"source":["/elsewhere"]}`)
	if got := match(`{"type":"order.paid"}`); strings.Join(got, ",") != "scan-prefix" {
		t.Errorf("after replace, Match = %v, want [scan-prefix]", got)
	}
	if !s.Remove("scan-prefix") || s.Remove("scan-prefix") {
		t.Error("Remove: want true then false")
	}
	if got := match(`{"type":"order.paid"}`); len(got) != 0 {
		t.Errorf("after remove, Match = %v, want none", got)
	}
	if s.Len() != 5 {
		t.Errorf("Len = %d, want 5", s.Len())
	}
	if err := s.Add("nil", nil); err == nil {
		t.Error("Add(nil) error = nil")
	}
}

func TestSetConcurrent(t *testing.T) {
	s := NewSet()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 200; i++ {
			id := string(rune('a' + i%26))
			_ = s.Add(id, MustCompile(`{"type":["t`+id+`"]}`))
			if i%3 == 0 {
				s.Remove(id)
			}
		}
	}()
	for i := 0; i < 200; i++ {
		if _, err := s.Match([]byte(`{"type":"ta"}`)); err != nil {
			t.Fatal(err)
		}
	}
	<-done
}
