package asterisk

import (
	"encoding/json"
	"testing"
	"time"

	"callbridge/internal/asterisk/ami"
)

func TestRawEvent(t *testing.T) {
	at := time.Date(2026, 11, 21, 5, 0, 0, 0, time.UTC)
	p := ami.NewPacket("Event", "VarSet", "Channel", "PJSIP/101-1", "ChanVariable", "A=1", "ChanVariable", "B=2", "ChanVariable", "C=3")
	var got struct {
		Type string         `json:"type"`
		PBX  string         `json:"pbx"`
		Time time.Time      `json:"time"`
		Data map[string]any `json:"data"`
	}
	if err := json.Unmarshal(rawEvent("lab", p, at), &got); err != nil {
		t.Fatal(err)
	}
	if got.Type != "pbx.raw" || got.PBX != "lab" || !got.Time.Equal(at) || got.Data["Event"] != "VarSet" || got.Data["Channel"] != "PJSIP/101-1" {
		t.Fatalf("%+v", got)
	}
	vars, ok := got.Data["ChanVariable"].([]any)
	if !ok || len(vars) != 3 || vars[0] != "A=1" || vars[2] != "C=3" {
		t.Fatalf("repeated key: %#v", got.Data["ChanVariable"])
	}
}
