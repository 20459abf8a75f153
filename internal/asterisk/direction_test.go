package asterisk

import (
	"testing"

	"callbridge/internal/call"
	"callbridge/internal/intern"
)

func labRules(t *testing.T) *rules {
	t.Helper()
	o := labOptions()
	r, err := newRules(&o, intern.New(64))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestClassify(t *testing.T) {
	r := labRules(t)
	for _, tc := range []struct {
		name, ctx string
		kind      chanKind
		ext       string
		half      byte
	}{
		// SIP: the trunk by name, phones by endpoint.
		{"PJSIP/trunk-00000088", "from-pstn-sip", kindTrunk, "", 0},
		{"PJSIP/trunk-00000084", "from-pstn-sip", kindTrunk, "", 0}, // dialled out: still the trunk
		{"PJSIP/101-00000089", "from-internal", kindPhone, "101", 0},
		{"PJSIP/202-0000008f", "from-internal", kindPhone, "202", 0},
		// An endpoint not listed as a trunk whose own context takes external calls.
		{"PJSIP/provider2-0000002a", "from-pstn-sip", kindTrunk, "", 0},
		// A trunk prefix matches whole endpoints only.
		{"PJSIP/trunk2-00000001", "from-internal", kindPhone, "trunk2", 0},
		// Local: the context decides, then the number.
		{"Local/101@from-pstn-00000002;1", "from-pstn", kindEntry, "101", 1},
		{"Local/101@from-pstn-00000002;2", "from-pstn", kindEntry, "101", 2},
		{"Local/101@phones-00000003;1", "phones", kindPhone, "101", 1},
		{"Local/107@from-internal-00000014;1", "from-internal", kindPhone, "107", 1},
		{"Local/107@from-internal-sip-00000001;2", "from-internal-sip", kindPhone, "107", 2},
		{"Local/202@qmembers-0000001e;1", "qmembers", kindPhone, "202", 1},
		{"Local/1@loadphone-000096da;2", "loadphone", kindPhone, "1", 2}, // internal context: any exten
		{"Local/5001@loadin-000096d9;1", "loadin", kindEntry, "5001", 1},
		{"Local/0612345678@pstn-out-0000000b;1", "pstn-out", kindOutside, "0612345678", 1},
		// Contexts in neither list: the internal pattern decides.
		{"Local/600@ringgroup-00000001;1", "ringgroup", kindPhone, "600", 1},
		{"Local/+33612345678@out-00000001;1", "out", kindOutside, "+33612345678", 1},
		{"Local/7@ivr-00000001;1", "ivr", kindOutside, "7", 1},
	} {
		got := r.classify([]byte(tc.name), []byte(tc.ctx))
		if got.kind != tc.kind || got.ext != tc.ext || got.half != tc.half || got.local != (tc.half != 0) {
			t.Errorf("classify(%s, %s) = %+v, want kind %d ext %q half %d", tc.name, tc.ctx, got, tc.kind, tc.ext, tc.half)
		}
	}
}

func TestDirectionRules(t *testing.T) {
	for _, tc := range []struct {
		root    chanKind
		decided bool
		dir     call.Direction
	}{
		{kindTrunk, true, call.DirectionIn},
		{kindEntry, true, call.DirectionIn},
		{kindOutside, true, call.DirectionOut}, // Originate to the customer first
		{kindPhone, false, ""},                 // a phone: its first dial decides
	} {
		dir, decided := rootDirection(tc.root)
		if dir != tc.dir || decided != tc.decided {
			t.Errorf("rootDirection(%d) = %s %v, want %s %v", tc.root, dir, decided, tc.dir, tc.decided)
		}
	}
	for _, tc := range []struct {
		target chanKind
		dir    call.Direction
	}{
		{kindTrunk, call.DirectionOut},
		{kindOutside, call.DirectionOut},
		{kindPhone, call.DirectionInternal},
		{kindEntry, call.DirectionInternal},
	} {
		if got := dialDirection(tc.target); got != tc.dir {
			t.Errorf("dialDirection(%d) = %s, want %s", tc.target, got, tc.dir)
		}
	}
}

func TestTrunkPrefixes(t *testing.T) {
	o := Options{PBX: "x", TrunkEndpoints: []string{"PJSIP/trunk", "DAHDI/", " ", "SIP/prov"}}
	r, err := newRules(&o, intern.New(8))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{
		"PJSIP/trunk-0000002a":  true,
		"PJSIP/trunk":           true,
		"PJSIP/trunk/sip:x@y-1": true,
		"PJSIP/trunkX-00000001": false,
		"PJSIP/101-00000001":    false,
		"DAHDI/i1/5551234-1":    true,
		"SIP/prov-0000001":      true,
		"SIP/provider-0000001":  false,
	} {
		if got := r.isTrunk([]byte(name)); got != want {
			t.Errorf("isTrunk(%s) = %v, want %v", name, got, want)
		}
	}
}

func TestInternalPattern(t *testing.T) {
	r := labRules(t)
	for n, want := range map[string]bool{"101": true, "10": true, "12345": true, "1": false, "123456": false, "0612345678": false, "": false, "1a": false} {
		if got := r.isInternalNumber(n); got != want {
			t.Errorf("isInternalNumber(%q) = %v, want %v", n, got, want)
		}
	}
	o := Options{PBX: "x", InternalPattern: `^2[0-9]{3}$`}
	r2, err := newRules(&o, intern.New(8))
	if err != nil {
		t.Fatal(err)
	}
	if !r2.isInternalNumber("2001") || r2.isInternalNumber("101") {
		t.Error("custom internal pattern not used")
	}
}

func TestOptionsErrors(t *testing.T) {
	for name, o := range map[string]Options{
		"no pbx":        {},
		"bad pattern":   {PBX: "x", InternalPattern: "("},
		"both contexts": {PBX: "x", InternalContexts: []string{"a"}, ExternalContexts: []string{"a"}},
	} {
		if _, err := NewCorrelator(o); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestDialledNumber(t *testing.T) {
	for in, want := range map[string]string{
		"0612345678@trunk":            "0612345678",
		"trunk/sip:+33612345678@host": "+33612345678",
		"101":                         "101",
		"0612345678@pstn-out":         "0612345678",
		"trunk/tel:0612345678":        "0612345678",
		"SIP:0612345678@gw,30":        "0612345678",
		"":                            "",
	} {
		if got := string(dialledNumber([]byte(in))); got != want {
			t.Errorf("dialledNumber(%q) = %q, want %q", in, got, want)
		}
	}
}
