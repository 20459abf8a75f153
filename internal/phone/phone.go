// Package phone normalises telephone numbers as PBXs present them, so calls,
// contacts and CRM look-ups agree on who a subscriber is.
//
// A number is never rejected: internal extensions, lab numbers and
// "anonymous" are real caller IDs that CRMs still need to see, so the raw
// form is always kept and the E.164 form is added only when it is certain.
package phone

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"
)

// DefaultRegion is RU because callbridge's PBXs and seeds are Russian.
const DefaultRegion = "RU"

// minDigits is the shortest number that can have an E.164 form: anything
// shorter is an extension or a service code (101, 112), and sending those
// to libphonenumber would only cost time and risk a false match.
const minDigits = 6

// maxInput bounds the work done per number; libphonenumber refuses longer
// input anyway, so checking first keeps garbage off the hot path.
const maxInput = 250

// maxE164Digits is ITU-T E.164's limit, country code included.
const maxE164Digits = 15

// ErrUnknownRegion lets callers tell a configuration mistake from other errors.
var ErrUnknownRegion = errors.New("phone: unknown region")

// Number keeps Raw verbatim because PBXs and CRMs need their own string back; E164 is set only when certain.
type Number struct {
	Raw  string `json:"raw"`
	E164 string `json:"e164,omitempty"`
}

// Normalizer is immutable so one value serves every goroutine; its zero value reads numbers as RU.
type Normalizer struct {
	region string
}

// NewNormalizer rejects unknown regions so a config typo fails at start, not as silently missing E.164 forms.
func NewNormalizer(defaultRegion string) (*Normalizer, error) {
	region := strings.ToUpper(strings.TrimSpace(defaultRegion))
	if region == "" {
		region = DefaultRegion
	}
	// GetSupportedRegions returns the library's own map: read it, never write.
	if !phonenumbers.GetSupportedRegions()[region] {
		return nil, fmt.Errorf("%w %q", ErrUnknownRegion, defaultRegion)
	}
	return &Normalizer{region: region}, nil
}

// Parse never fails, because a caller ID that is not a public number is still a caller ID.
func (n *Normalizer) Parse(raw string) Number {
	_, e164 := n.parse(raw)
	return Number{Raw: raw, E164: e164}
}

// E164 is for callers that only need the comparable form.
func (n *Normalizer) E164(raw string) string {
	_, e164 := n.parse(raw)
	return e164
}

// National is seed 002's (UserCRM) look-up key, "E.164 without country code" (the national significant number), or "".
func (n *Normalizer) National(raw string) string {
	if p, _ := n.parse(raw); p != nil {
		return phonenumbers.GetNationalSignificantNumber(p)
	}
	return ""
}

// Match accepts equal raw strings so extensions still pair up, otherwise only equal E.164 forms: it never guesses.
func (n *Normalizer) Match(a, b string) bool {
	if a == b {
		return true
	}
	ea := n.E164(a)
	return ea != "" && ea == n.E164(b)
}

// parse returns nil and "" unless the number is certainly a public number.
func (n *Normalizer) parse(raw string) (*phonenumbers.PhoneNumber, string) {
	s := clean(raw)
	if len(s) > maxInput || countDigits(s) < minDigits {
		return nil, ""
	}
	region := n.region
	if region == "" { // zero Normalizer: behave like NewNormalizer("")
		region = DefaultRegion
	}
	if p, e164 := parseValid(s, region); p != nil {
		return p, e164
	}
	// Russia dials abroad with 810, so libphonenumber reads "00…" as a
	// national number there; PBXs and people still write 00, so retry it as
	// "+". Regions whose prefix is 00 already succeeded above.
	if strings.HasPrefix(s, "00") {
		return parseValid("+"+s[2:], region)
	}
	return nil, ""
}

// parseValid requires IsValidNumber, not just IsPossibleNumber, because
// "possible" only checks the length: with region RU the lab number
// "0611000001" and the local "1234567" are both "possible" and would become
// the bogus +70611000001 and +71234567. The cost is that a range newer than
// the library's metadata gets no E.164 form; it is still kept and matched raw.
// IsPossibleNumber runs first as a cheap filter before the pattern matching.
//
// The 15-digit cap is checked separately because libphonenumber's German
// metadata accepts fixed-line numbers of up to 15 national digits, so it
// calls +4920100000000000 (16 digits) valid although E.164 allows 15.
func parseValid(s, region string) (*phonenumbers.PhoneNumber, string) {
	p, err := phonenumbers.Parse(s, region)
	if err != nil || !phonenumbers.IsPossibleNumber(p) || !phonenumbers.IsValidNumber(p) {
		return nil, ""
	}
	e164 := phonenumbers.Format(p, phonenumbers.E164)
	if len(e164) > 1+maxE164Digits {
		return nil, ""
	}
	return p, e164
}

// clean strips the SIP/tel URI decoration PBXs put around caller IDs
// (`"Name" <sip:+7495…@host;user=phone>`); it slices, never allocates.
func clean(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '<'); i >= 0 {
		s = s[i+1:]
		if j := strings.IndexByte(s, '>'); j >= 0 {
			s = s[:j]
		}
	}
	for _, scheme := range [...]string{"sip:", "sips:", "tel:"} {
		if len(s) >= len(scheme) && strings.EqualFold(s[:len(scheme)], scheme) {
			s = s[len(scheme):]
			break
		}
	}
	if i := strings.IndexByte(s, '@'); i >= 0 {
		s = s[:i]
	}
	// URI parameters (";user=phone", ";ext=") are not part of the number.
	if i := strings.IndexByte(s, ';'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

// countDigits counts Unicode digits because libphonenumber accepts
// full-width and Arabic-Indic ones. Vanity letters are not counted: PBXs
// never send them, and counting them would push every "anonymous" through
// the full parser.
func countDigits(s string) int {
	n := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if '0' <= c && c <= '9' {
				n++
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if unicode.IsDigit(r) {
			n++
		}
		i += size
	}
	return n
}
