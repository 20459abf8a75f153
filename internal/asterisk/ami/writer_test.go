package ami

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestWriteAction(t *testing.T) {
	cases := []struct {
		name     string
		action   string
		actionID string
		kv       []string
		want     string
	}{
		{"ping", "Ping", "p-1", nil, "Action: Ping\r\nActionID: p-1\r\n\r\n"},
		{"no ActionID", "Logoff", "", nil, "Action: Logoff\r\n\r\n"},
		{
			"originate with repeated Variable",
			"Originate", "orig-7f3a",
			[]string{"Channel", "Local/101@from-pstn", "CallerID", `"PSTN Caller 1" <0611000001>`, "Variable", "TALK=5", "Variable", "SCEN=01"},
			"Action: Originate\r\nActionID: orig-7f3a\r\nChannel: Local/101@from-pstn\r\nCallerID: \"PSTN Caller 1\" <0611000001>\r\nVariable: TALK=5\r\nVariable: SCEN=01\r\n\r\n",
		},
		{"empty value and colons in values", "Setvar", "s:1", []string{"Variable", "X", "Value", ""}, "Action: Setvar\r\nActionID: s:1\r\nVariable: X\r\nValue: \r\n\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := NewWriter(&out).WriteAction(tc.action, tc.actionID, tc.kv...); err != nil {
				t.Fatal(err)
			}
			if out.String() != tc.want {
				t.Fatalf("wrote %q, want %q", out.String(), tc.want)
			}
		})
	}
}

func TestWriterRefuses(t *testing.T) {
	cases := []struct {
		name     string
		action   string
		actionID string
		kv       []string
	}{
		{"CRLF in a value (header injection)", "Originate", "o-1", []string{"CallerID", "x\r\nAction: Hangup\r\nChannel: PJSIP/101"}},
		{"LF in a value", "Originate", "o-1", []string{"CallerID", "x\nAction: Hangup"}},
		{"CR in a value", "Originate", "o-1", []string{"CallerID", "x\ry"}},
		{"CRLF in the ActionID", "Ping", "p\r\n\r\nAction: Logoff", nil},
		{"LF in the action name", "Ping\nAction: Logoff", "", nil},
		{"CR in a key", "Ping", "", []string{"K\r", "v"}},
		{"LF in a key", "Ping", "", []string{"K\nAction", "v"}},
		{"colon in a key", "Ping", "", []string{"Action: Logoff", "v"}},
		{"empty key", "Ping", "", []string{"", "v"}},
		{"blank-edged key", "Ping", "", []string{" Channel", "v"}},
		{"empty action", "", "a-1", nil},
		{"odd key, value list", "Ping", "", []string{"Channel"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := NewWriter(&out).WriteAction(tc.action, tc.actionID, tc.kv...)
			if !errors.Is(err, ErrInvalidField) || !strings.HasPrefix(err.Error(), "ami: ") {
				t.Fatalf("err = %v, want ErrInvalidField", err)
			}
			if out.Len() != 0 {
				t.Fatalf("wrote %q despite refusing", out.String())
			}
			if strings.Contains(err.Error(), "Hangup") || strings.Contains(err.Error(), "PJSIP") {
				t.Fatalf("error quotes a value: %v", err)
			}
		})
	}
}

func TestWritePacket(t *testing.T) {
	var out bytes.Buffer
	w := NewWriter(&out)
	in := "Event: UserEvent\r\nUserEvent: CrmNote\r\nNote: a:b:c\r\nNote:   spaced\r\nEmpty: \r\n\r\n"
	r := NewReader(strings.NewReader(in))
	p, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WritePacket(p); err != nil {
		t.Fatal(err)
	}
	if out.String() != in {
		t.Fatalf("wrote %q, want %q", out.String(), in)
	}
	for _, bad := range []*Packet{
		NewPacket(),
		NewPacket("Response", "Follows", "Privilege", "Command"),
		NewPacket("response", "follows"),
		NewPacket("Event", "X", "Bad\nKey", "v"),
	} {
		out.Reset()
		if err := w.WritePacket(bad); !errors.Is(err, ErrInvalidField) || out.Len() != 0 {
			t.Fatalf("WritePacket(%q) = %v, wrote %q", bad.String(), err, out.String())
		}
	}
}

type shortWriter struct{ n int }

func (s *shortWriter) Write(p []byte) (int, error) { return min(len(p), s.n), nil }

type failWriter struct{}

var errWrite = errors.New("broken pipe")

func (failWriter) Write([]byte) (int, error) { return 0, errWrite }

func TestWriterErrors(t *testing.T) {
	if err := NewWriter(&shortWriter{n: 5}).WriteAction("Ping", "p"); err != io.ErrShortWrite {
		t.Fatalf("short write: %v", err)
	}
	if err := NewWriter(failWriter{}).WriteAction("Ping", "p"); err != errWrite {
		t.Fatalf("failed write: %v", err)
	}
}

// countingWriter counts Write calls.
type countingWriter struct {
	bytes.Buffer
	calls int
}

func (c *countingWriter) Write(p []byte) (int, error) { c.calls++; return c.Buffer.Write(p) }

// TestWriterOneWritePerPacket: a packet goes out in one Write, so it is never
// interleaved or cut between calls, and the Writer does not allocate once warm.
func TestWriterOneWritePerPacket(t *testing.T) {
	var cw countingWriter
	w := NewWriter(&cw)
	kv := []string{"Channel", "PJSIP/101", "Variable", "A=1"}
	for range 10 {
		if err := w.WriteAction("Originate", "o-1", kv...); err != nil {
			t.Fatal(err)
		}
	}
	if cw.calls != 10 {
		t.Fatalf("%d writes for 10 actions", cw.calls)
	}
	w = NewWriter(io.Discard)
	allocs := testing.AllocsPerRun(100, func() {
		if err := w.WriteAction("Originate", "o-1", kv...); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 0 {
		t.Fatalf("%v allocations per action", allocs)
	}
}

// TestWriterReaderRoundTrip: actions written read back as the same fields.
func TestWriterReaderRoundTrip(t *testing.T) {
	var out bytes.Buffer
	w := NewWriter(&out)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(w.WriteAction("Login", "login-1", "Username", "cti", "Secret", "s e:c", "Events", "off"))
	must(w.WriteAction("Originate", "o-2", "Channel", "PJSIP/101", "Variable", "A=1", "Variable", "B=  2 "))
	must(w.WritePacket(NewPacket("Action", "Ping", "ActionID", "")))
	want := []pk{
		P("Action", "Login", "ActionID", "login-1", "Username", "cti", "Secret", "s e:c", "Events", "off"),
		P("Action", "Originate", "ActionID", "o-2", "Channel", "PJSIP/101", "Variable", "A=1", "Variable", "B=  2 "),
		P("Action", "Ping", "ActionID", ""),
	}
	got, _, err := readAll(&out, Limits{})
	if err != io.EOF {
		t.Fatal(err)
	}
	samePackets(t, "round trip", got, want)
}
