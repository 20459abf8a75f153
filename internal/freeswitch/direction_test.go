package freeswitch

import (
	"strings"
	"testing"

	"callbridge/internal/call"
	"callbridge/internal/intern"
)

func corrRules(t *testing.T, o Options) *dirRules {
	t.Helper()
	r, err := newDirRules(&o, intern.New(64))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestClassify(t *testing.T) {
	lab := corrRules(t, corrLabOptions())
	gw := corrLabOptions()
	gw.Gateways = []string{"trunk"}
	gw.ExternalContexts = append(gw.ExternalContexts, "from-trunk")
	withGW := corrRules(t, gw)
	for _, tc := range []struct {
		what                           string
		r                              *dirRules
		name, dir, ctx, dest, cid, gwv string
		kind                           legKind
		num                            string
	}{
		// The lab: every channel on sofia profile pbx; context and number decide.
		{"trunk caller in public", lab, "sofia/pbx/+79161000001@127.0.0.1", "inbound", "public", "2001", "+79161000001", "", legOutside, "+79161000001"},
		{"agent leg dialled by the PBX", lab, "sofia/pbx/2001@127.0.0.1:5090", "outbound", "public", "2001", "+79161000001", "", legPhone, "2001"},
		{"click-to-call agent leg", lab, "sofia/pbx/2001@127.0.0.1:5090", "outbound", "default", "2001", "+74951112233", "", legPhone, "2001"},
		{"external number dialled", lab, "sofia/pbx/+74951112233@127.0.0.1:5090", "outbound", "default", "+74951112233", "+74950000001", "", legOutside, "+74951112233"},
		{"queue agent leg", lab, "sofia/pbx/4014@127.0.0.1:5090", "outbound", "default", "4014", "+79161000014", "", legPhone, "4014"},
		// A dialled leg's context is inherited from the caller: it says nothing.
		{"outside number dialled from public", lab, "sofia/pbx/88005553535@h", "outbound", "public", "88005553535", "2001", "", legOutside, "88005553535"},
		{"dialled leg without a destination: the channel name", lab, "sofia/pbx/2002@h:5090", "outbound", "", "", "", "", legPhone, "2002"},
		{"dialled by URI", lab, "sofia/pbx/sip:+33612345678@h", "outbound", "", "", "", "", legOutside, "+33612345678"},
		// A phone calling from an internal context.
		{"phone in default", lab, "sofia/pbx/2001@127.0.0.1", "inbound", "default", "2002", "2001", "", legPhone, "2001"},
		{"phone with a name as caller id", lab, "sofia/pbx/2003@127.0.0.1", "inbound", "default", "2002", "alice", "", legPhone, "2003"},
		// Contexts in neither list: the caller's number decides.
		{"internal caller, unknown context", lab, "sofia/pbx/2001@h", "inbound", "ivr", "7", "2001", "", legPhone, "2001"},
		{"outside caller, unknown context", lab, "sofia/pbx/+7916@h", "inbound", "ivr", "7", "+79160000000", "", legOutside, "+79160000000"},
		{"no caller id, unknown context", lab, "sofia/pbx/anonymous@h", "inbound", "ivr", "7", "", "", legOutside, ""},
		// Gateways are the outside world whatever the number or context.
		{"dialled through a gateway", withGW, "sofia/gateway/trunk/2001", "outbound", "default", "2001", "2001", "", legOutside, "2001"},
		{"gateway name with the number in the name only", withGW, "sofia/gateway/trunk/+74951112233", "outbound", "", "", "", "", legOutside, "+74951112233"},
		{"inbound through a gateway into an internal context", withGW, "sofia/external/+74951112233@1.2.3.4", "inbound", "default", "2001", "+74951112233", "trunk", legOutside, "+74951112233"},
		{"unknown gateway is not a trunk", withGW, "sofia/gateway/other/2001", "outbound", "", "2001", "", "", legPhone, "2001"},
		{"a second external context", withGW, "sofia/external/0612@h", "inbound", "from-trunk", "5000", "0612345678", "", legOutside, "0612345678"},
	} {
		got := tc.r.classify(legFacts{name: []byte(tc.name), direction: []byte(tc.dir), context: []byte(tc.ctx),
			dest: []byte(tc.dest), cid: []byte(tc.cid), gateway: []byte(tc.gwv)})
		if got.kind != tc.kind || got.num != tc.num {
			t.Errorf("%s: classify = %+v, want kind %d num %q", tc.what, got, tc.kind, tc.num)
		}
	}
}

func TestDirectionRules(t *testing.T) {
	for _, tc := range []struct {
		root    legKind
		inbound bool
		dir     call.Direction
		decided bool
	}{
		{legOutside, true, call.DirectionIn, true},   // a caller from outside
		{legOutside, false, call.DirectionOut, true}, // originated to the outside number first
		{legPhone, true, "", false},                  // a phone dialling: wait for what it dials
		{legPhone, false, "", false},                 // a click-to-call's agent leg: the same
	} {
		dir, decided := rootDirection(tc.root, tc.inbound)
		if dir != tc.dir || decided != tc.decided {
			t.Errorf("rootDirection(%d, %v) = %q, %v; want %q, %v", tc.root, tc.inbound, dir, decided, tc.dir, tc.decided)
		}
	}
	if d := dialDirection(legOutside); d != call.DirectionOut {
		t.Errorf("a phone dialling out: %s", d)
	}
	if d := dialDirection(legPhone); d != call.DirectionInternal {
		t.Errorf("a phone dialling a phone: %s", d)
	}
}

func TestInternalPattern(t *testing.T) {
	c, err := NewCorrelator(corrLabOptions())
	if err != nil {
		t.Fatal(err)
	}
	for n, want := range map[string]bool{"2001": true, "10": true, "99999": true, "1": false, "100000": false,
		"+74951112233": false, "": false, "20a1": false, "300": true} {
		if got := c.Internal(n); got != want {
			t.Errorf("Internal(%q) = %v, want %v", n, got, want)
		}
	}
	o := corrLabOptions()
	o.InternalPattern = `^(1\d{2}|2\d{3})$`
	c, err = NewCorrelator(o)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Internal("101") || c.Internal("300") || !c.Internal("2001") {
		t.Errorf("custom pattern not used")
	}
}

func TestCorrelatorOptionErrors(t *testing.T) {
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{}, "PBX id"},
		{Options{PBX: "x", InternalContexts: []string{"default"}, ExternalContexts: []string{"default"}}, "both internal and external"},
		{Options{PBX: "x", InternalPattern: "("}, "internal pattern"},
	} {
		_, err := NewCorrelator(tc.o)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "freeswitch: ") {
			t.Errorf("NewCorrelator(%+v) = %v, want an error about %s", tc.o, err, tc.want)
		}
	}
}

func TestParseOriginate(t *testing.T) {
	for _, tc := range []struct{ arg, uid, target string }{
		{"{origination_uuid=36ef9f7c-e1e3,origination_caller_id_name='Click to call',originate_timeout=20}sofia/pbx/2001@127.0.0.1:5090 +74951112233 XML default",
			"36ef9f7c-e1e3", "+74951112233"},
		{"{origination_uuid=8989aa54}sofia/pbx/2002@127.0.0.1:5090 &park()", "8989aa54", ""},
		{"[origination_uuid=abc]user/2001 0612345678", "abc", "0612345678"},
		{"user/2001 0612345678", "", "0612345678"},
		{"{origination_uuid=x", "x", ""},
		{"", "", ""},
	} {
		uid, target := parseOriginate([]byte(tc.arg))
		if string(uid) != tc.uid || string(target) != tc.target {
			t.Errorf("parseOriginate(%q) = %q, %q; want %q, %q", tc.arg, uid, target, tc.uid, tc.target)
		}
	}
}
