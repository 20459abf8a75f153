package phone

import (
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
)

func mustRU(t testing.TB) *Normalizer {
	t.Helper()
	n, err := NewNormalizer("RU")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestNewNormalizer(t *testing.T) {
	tests := []struct {
		name    string
		region  string
		wantErr bool
	}{
		{"empty defaults to RU", "", false},
		{"RU", "RU", false},
		{"lower case", "de", false},
		{"padded", " US ", false},
		{"unknown", "XX", true},
		{"unknown ZZ", "ZZ", true},
		{"non-geographic 001", "001", true},
		{"garbage", "Russia", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := NewNormalizer(tt.region)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("NewNormalizer(%q): want error, got nil", tt.region)
				}
				if !errors.Is(err, ErrUnknownRegion) {
					t.Errorf("error %v does not wrap ErrUnknownRegion", err)
				}
				if !strings.HasPrefix(err.Error(), "phone: ") {
					t.Errorf("error %q lacks prefix %q", err, "phone: ")
				}
				return
			}
			if err != nil || n == nil {
				t.Fatalf("NewNormalizer(%q) = %v, %v", tt.region, n, err)
			}
		})
	}
}

func TestDefaultRegionIsRU(t *testing.T) {
	n, err := NewNormalizer("")
	if err != nil {
		t.Fatal(err)
	}
	if got := n.E164("89066800404"); got != "+79066800404" {
		t.Errorf("E164 = %q, want +79066800404", got)
	}
	var zero Normalizer
	if got := zero.E164("89066800404"); got != "+79066800404" {
		t.Errorf("zero Normalizer E164 = %q, want +79066800404", got)
	}
}

func TestParseRU(t *testing.T) {
	n := mustRU(t)
	tests := []struct {
		name, raw, e164, national string
	}{
		// Russian forms.
		{"mobile with trunk 8", "89066800404", "+79066800404", "9066800404"},
		{"E.164", "+74951343060", "+74951343060", "4951343060"},
		{"E.164 without plus", "74951343060", "+74951343060", "4951343060"},
		{"national without trunk (seed 002)", "4951343060", "+74951343060", "4951343060"},
		{"formatted with trunk 8", "8 (495) 134-30-60", "+74951343060", "4951343060"},
		{"formatted E.164", "+7 906 680 04 04", "+79066800404", "9066800404"},
		{"freephone", "88001234567", "+78001234567", "8001234567"},
		{"surrounding whitespace", "  \t+74951343060\n", "+74951343060", "4951343060"},
		{"extension suffix dropped", "+7 495 134-30-60 доб. 123", "+74951343060", "4951343060"},
		{"full-width digits", "８９０６６８００４０４", "+79066800404", "9066800404"},
		{"RU trunk 810 international", "810 49 30123456", "+4930123456", "30123456"},
		{"shared +7 plan: Kazakhstan", "+77011234567", "+77011234567", "7011234567"},

		// SIP / tel decorations.
		{"sip URI", "sip:+74951343060@pbx.example.com", "+74951343060", "4951343060"},
		{"sips URI upper case", "SIPS:89066800404@10.0.0.1:5061", "+79066800404", "9066800404"},
		{"sip URI with params", "sip:74951343060@pbx;user=phone", "+74951343060", "4951343060"},
		{"tel URI", "tel:+74951343060", "+74951343060", "4951343060"},
		{"tel URI with ext", "tel:+74951343060;ext=12", "+74951343060", "4951343060"},
		{"name-addr", `"Иван" <sip:+79066800404@pbx>`, "+79066800404", "9066800404"},
		{"user@host without scheme", "89066800404@pbx", "+79066800404", "9066800404"},

		// 00 international prefix, which RU (810) does not know.
		{"00 to Germany", "004930123456", "+4930123456", "30123456"},
		{"00 to Russia", "0074951343060", "+74951343060", "4951343060"},
		{"00 with spaces", "00 1 650 253 0000", "+16502530000", "6502530000"},

		// Foreign numbers keep their country.
		{"Germany", "+4930123456", "+4930123456", "30123456"},
		{"USA", "+1 650 253 0000", "+16502530000", "6502530000"},
		{"Italy keeps leading zero", "+390612345678", "+390612345678", "0612345678"},
		{"UK", "+44 20 7946 0958", "+442079460958", "2079460958"},

		// Not public numbers: kept, no E.164.
		{"extension", "101", "", ""},
		{"extension 5 digits", "12345", "", ""},
		{"sip extension", "sip:101@pbx.local", "", ""},
		{"service code", "112", "", ""},
		{"lab number", "0611000001", "", ""},
		{"local number without area code", "1234567", "", ""},
		{"impossible +7", "+7611000001", "", ""},
		{"anonymous", "anonymous", "", ""},
		{"sip anonymous", "sip:anonymous@anonymous.invalid", "", ""},
		{"00 to nowhere", "000000000000", "", ""},

		// Garbage.
		{"empty", "", "", ""},
		{"blank", "   ", "", ""},
		{"letters", "abc", "", ""},
		{"plus", "+", "", ""},
		{"double plus", "++7", "", ""},
		// libphonenumber collapses repeated leading pluses; a doubled "+" is a
		// typing slip, not a different number.
		{"double plus full", "++74951343060", "+74951343060", "4951343060"},
		{"long digits", strings.Repeat("9", 40), "", ""},
		// libphonenumber calls these German numbers valid; E.164 caps at 15.
		{"16 digits, valid to libphonenumber", "+4920100000000000", "", ""},
		{"16 digits via 00 (fuzz find)", "004920100000000000", "", ""},
		{"15 digits German", "+492010000000000", "+492010000000000", "2010000000000"},
		{"very long digits", strings.Repeat("8", 10000), "", ""},
		{"unicode", "☎️ звоните мне", "", ""},
		{"emoji digits", "8️⃣9️⃣0️⃣", "", ""},
		{"invalid utf8", "\xff\xfe89066800404", "+79066800404", "9066800404"},
		{"lone bracket", "<", "", ""},
		{"lone at", "@", "", ""},
		{"scheme only", "sip:", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := n.Parse(tt.raw)
			if got.Raw != tt.raw {
				t.Errorf("Parse(%q).Raw = %q, want input unchanged", tt.raw, got.Raw)
			}
			if got.E164 != tt.e164 {
				t.Errorf("Parse(%q).E164 = %q, want %q", tt.raw, got.E164, tt.e164)
			}
			if e := n.E164(tt.raw); e != tt.e164 {
				t.Errorf("E164(%q) = %q, want %q", tt.raw, e, tt.e164)
			}
			if nat := n.National(tt.raw); nat != tt.national {
				t.Errorf("National(%q) = %q, want %q", tt.raw, nat, tt.national)
			}
		})
	}
}

func TestParseOtherRegion(t *testing.T) {
	de, err := NewNormalizer("DE")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, raw, e164 string }{
		{"national with trunk 0", "030 123456", "+4930123456"},
		{"00 is DE's own prefix", "0074951343060", "+74951343060"},
		{"foreign stays foreign", "+74951343060", "+74951343060"},
		{"extension", "101", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := de.E164(tt.raw); got != tt.e164 {
				t.Errorf("E164(%q) = %q, want %q", tt.raw, got, tt.e164)
			}
		})
	}
}

func TestMatch(t *testing.T) {
	n := mustRU(t)
	tests := []struct {
		name string
		a, b string
		want bool
	}{
		{"same raw extension", "101", "101", true},
		{"same raw unparsable", "0611000001", "0611000001", true},
		{"both empty", "", "", true},
		{"8 vs +7", "89066800404", "+79066800404", true},
		{"national vs formatted", "4951343060", "8 (495) 134-30-60", true},
		{"sip vs plain", "sip:+74951343060@pbx", "74951343060", true},
		{"00 vs +", "004930123456", "+4930123456", true},
		{"different numbers", "+74951343060", "+74951343061", false},
		{"different extensions", "101", "102", false},
		{"extension vs number", "101", "+74951343060", false},
		{"unparsable pair differ only by space", "101", " 101", false},
		{"empty vs anonymous", "", "anonymous", false},
		{"empty vs number", "", "+74951343060", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := n.Match(tt.a, tt.b); got != tt.want {
				t.Errorf("Match(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
			}
			if got := n.Match(tt.b, tt.a); got != tt.want {
				t.Errorf("Match(%q, %q) = %v, want %v (symmetry)", tt.b, tt.a, got, tt.want)
			}
		})
	}
}

func TestNumberJSON(t *testing.T) {
	n := mustRU(t)
	tests := []struct{ name, raw, want string }{
		{"parsed", "89066800404", `{"raw":"89066800404","e164":"+79066800404"}`},
		{"extension omits e164", "101", `{"raw":"101"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(n.Parse(tt.raw))
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Errorf("json = %s, want %s", b, tt.want)
			}
		})
	}
}

func TestConcurrent(t *testing.T) {
	n := mustRU(t)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				if got := n.E164("8 (495) 134-30-60"); got != "+74951343060" {
					t.Errorf("E164 = %q", got)
					return
				}
				if got := n.E164("+4930123456"); got != "+4930123456" {
					t.Errorf("E164 = %q", got)
					return
				}
			}
		}()
	}
	wg.Wait()
}

var benchInputs = []string{
	"89066800404",
	"+74951343060",
	"8 (495) 134-30-60",
	"sip:+79066800404@pbx.example.com",
	"101",
	"anonymous",
	"0611000001",
	"+1 650 253 0000",
}

func BenchmarkParse(b *testing.B) {
	n := mustRU(b)
	for _, in := range benchInputs {
		b.Run(in, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				n.Parse(in)
			}
		})
	}
}
