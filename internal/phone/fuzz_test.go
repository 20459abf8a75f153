package phone

import (
	"strings"
	"testing"
)

// FuzzParse guards the promise that any caller ID a PBX sends is kept
// verbatim and never yields a malformed E.164 form; the seed corpus lives in
// testdata/fuzz/FuzzParse so plain `go test` replays it.
func FuzzParse(f *testing.F) {
	n := mustRU(f)
	f.Fuzz(func(t *testing.T, raw string) {
		got := n.Parse(raw)
		if got.Raw != raw {
			t.Fatalf("Parse(%q).Raw = %q, want input unchanged", raw, got.Raw)
		}
		nat := n.National(raw)
		if got.E164 == "" {
			if nat != "" {
				t.Fatalf("National(%q) = %q without an E.164 form", raw, nat)
			}
			return
		}
		digits := got.E164[1:]
		if got.E164[0] != '+' || len(digits) == 0 || len(digits) > 15 || strings.Trim(digits, "0123456789") != "" {
			t.Fatalf("Parse(%q).E164 = %q, not +digits (at most 15)", raw, got.E164)
		}
		if nat == "" || !strings.HasSuffix(got.E164, nat) {
			t.Fatalf("National(%q) = %q, not a suffix of %q", raw, nat, got.E164)
		}
		// An E.164 form must read back as itself, or Match would not be an
		// equivalence on stored numbers.
		if again := n.E164(got.E164); again != got.E164 {
			t.Fatalf("E164(%q) = %q, not stable (from %q)", got.E164, again, raw)
		}
	})
}
