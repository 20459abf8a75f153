package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

const (
	asteriskFixtures   = "../../../shared/fixtures/asterisk"
	freeswitchFixtures = "../../../shared/fixtures/freeswitch"
)

type expectedTransfer struct {
	Kind      string `json:"kind"`
	From      string `json:"from"`
	To        string `json:"to"`
	Completed bool   `json:"completed"`
}

// replayedCall is the part of the API's call shape that expected.json describes.
type replayedCall struct {
	Direction   string             `json:"direction"`
	State       string             `json:"state"`
	Customer    string             `json:"customer"`
	DID         string             `json:"did"`
	AnsweredBy  string             `json:"answered_by"`
	Rung        []string           `json:"rung"`
	Disposition string             `json:"disposition"`
	TalkS       float64            `json:"talk_s"`
	ConnectedS  float64            `json:"connected_s"`
	Transfers   []expectedTransfer `json:"transfers"`
}

type expectedCall struct {
	replayedCall
	DID        *string `json:"did"`
	AnsweredBy *string `json:"answered_by"`
}

// TestAsteriskReplay runs `callbridge asterisk replay` on every recorded scenario with
// the lab PBX's configuration and compares what it prints with expected.json.
func TestAsteriskReplay(t *testing.T) {
	replayScenarios(t, "asterisk", asteriskFixtures, "../../examples/asterisk-lab.yaml", "ami.raw", "ami-reconnect.raw")
}

// TestFreeSWITCHReplay is the same for `callbridge freeswitch replay`, the JSON-format
// capture of 01 and the gzipped burst of 12 included.
func TestFreeSWITCHReplay(t *testing.T) {
	replayScenarios(t, "freeswitch", freeswitchFixtures, "../../examples/freeswitch-lab.yaml", "esl.raw", "esl-reconnect.raw")
}

// replayScenarios replays every fixture folder (and subfolder) with an expected.json.
func replayScenarios(t *testing.T, kind, fixtures, config, rawName, reconnectName string) {
	top, err := filepath.Glob(filepath.Join(fixtures, "*", "expected.json"))
	if err != nil || len(top) == 0 {
		t.Fatalf("no fixtures under %s: %v", fixtures, err)
	}
	nested, _ := filepath.Glob(filepath.Join(fixtures, "*", "*", "expected.json"))
	for _, exp := range append(top, nested...) {
		dir := filepath.Dir(exp)
		name, _ := filepath.Rel(fixtures, dir)
		t.Run(name, func(t *testing.T) {
			raw := filepath.Join(dir, rawName)
			if _, err := os.Stat(raw); err != nil {
				raw += ".gz"
			}
			args := []string{kind, "replay", "--config", config, raw}
			if _, err := os.Stat(filepath.Join(dir, reconnectName)); err == nil {
				args = append(args, filepath.Join(dir, reconnectName))
			}
			checkReplay(t, exp, args)
		})
	}
}

// checkReplay runs the replay command and compares its calls with expected.json.
func checkReplay(t *testing.T, exp string, args []string) {
	t.Helper()
	out, errOut, err := cli(t, args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	var got []replayedCall
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var c replayedCall
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		got = append(got, c)
	}
	var want struct{ Calls []expectedCall }
	b, err := os.ReadFile(exp)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want.Calls) {
		t.Fatalf("%d calls, want %d:\n%s", len(got), len(want.Calls), out)
	}
	// Match by customer (and by order among calls of the same customer).
	sortCalls := func(cs []replayedCall) {
		sort.SliceStable(cs, func(i, j int) bool { return cs[i].Customer < cs[j].Customer })
	}
	wants := make([]replayedCall, len(want.Calls))
	for i, w := range want.Calls {
		wants[i] = w.replayedCall
		wants[i].DID, wants[i].AnsweredBy = deref(w.DID), deref(w.AnsweredBy)
	}
	sortCalls(got)
	sortCalls(wants)
	for i := range got {
		if err := sameCall(got[i], wants[i]); err != nil {
			t.Errorf("call %d (customer %s): %v", i, wants[i].Customer, err)
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func sameCall(got, want replayedCall) error {
	var diffs []string
	check := func(name string, g, w any) {
		if !reflect.DeepEqual(g, w) {
			diffs = append(diffs, fmt.Sprintf("%s %v, want %v", name, g, w))
		}
	}
	check("state", got.State, "ended")
	check("direction", got.Direction, want.Direction)
	check("customer", got.Customer, want.Customer)
	check("did", got.DID, want.DID)
	check("answered_by", got.AnsweredBy, want.AnsweredBy)
	check("rung", append([]string{}, got.Rung...), append([]string{}, want.Rung...))
	check("disposition", got.Disposition, want.Disposition)
	check("transfers", append([]expectedTransfer{}, got.Transfers...), append([]expectedTransfer{}, want.Transfers...))
	if math.Abs(got.TalkS-want.TalkS) > 1 {
		diffs = append(diffs, fmt.Sprintf("talk_s %v, want %v ± 1", got.TalkS, want.TalkS))
	}
	if math.Abs(got.ConnectedS-want.ConnectedS) > 1 {
		diffs = append(diffs, fmt.Sprintf("connected_s %v, want %v ± 1", got.ConnectedS, want.ConnectedS))
	}
	if len(diffs) > 0 {
		return fmt.Errorf("%s", strings.Join(diffs, "; "))
	}
	return nil
}
