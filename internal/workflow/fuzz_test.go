package workflow

import (
	"testing"
)

// FuzzStoredAndAPIInput feeds arbitrary bytes to the parsers of input that
// comes from outside the process: execution state read back from the
// store, ARNs and names from API requests, and pagination tokens. They must
// return errors, never panic.
func FuzzStoredAndAPIInput(f *testing.F) {
	sv := &stateValue{Meta: execMeta{ARN: ExecutionARN("m", "e")}, Owner: "n", Step: 3}
	f.Add(encodeState(sv, snapS2, []byte("snapshot")), "arn:aws:states:us-east-1:000000000000:execution:m:e", "MQ")
	f.Add([]byte{stateMagic, 0xff, 0xff}, "arn:aws:states:::express:m:e:x", "")
	f.Add([]byte{}, "m", "bm90IGEgbnVtYmVy")
	f.Fuzz(func(t *testing.T, state []byte, ref, token string) {
		if sv, _, _, err := decodeState(state); err == nil && sv == nil {
			t.Fatal("decodeState: nil value without an error")
		}
		if r, err := parseExecutionARN(ref); err == nil && !r.express {
			if !validName(r.machine) || !validName(r.name) {
				t.Fatalf("parseExecutionARN(%q) accepted invalid names %q, %q", ref, r.machine, r.name)
			}
		}
		if name, err := machineName(ref); err == nil && !validName(name) {
			t.Fatalf("machineName(%q) = %q, not a valid name", ref, name)
		}
		k := keyPart(ref)
		if tokenKey(ref) != "" && len(k) == 0 {
			t.Fatal("empty key part")
		}
		lo, hi, _, err := pageIn{NextToken: token, MaxResults: len(ref)}.page(17, 5)
		if err == nil && (lo < 0 || hi > 17 || lo > hi) {
			t.Fatalf("page(%q): [%d, %d) out of range", token, lo, hi)
		}
	})
}
