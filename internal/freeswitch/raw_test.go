package freeswitch

import (
	"bytes"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"callbridge/internal/freeswitch/esl"
)

// rawDecode reads one message framed by the fake and returns its event.
func rawDecode(t *testing.T, b []byte) *esl.Event {
	t.Helper()
	m, err := esl.NewReader(bytes.NewReader(b)).Next()
	if err != nil {
		t.Fatal(err)
	}
	e := m.Event()
	if e == nil {
		t.Fatalf("not an event: %s", b)
	}
	return e
}

func TestRawEvent(t *testing.T) {
	at := time.Date(2026, 11, 21, 5, 0, 0, 0, time.UTC)
	type raw struct {
		Type string         `json:"type"`
		PBX  string         `json:"pbx"`
		Time time.Time      `json:"time"`
		Data map[string]any `json:"data"`
	}
	t.Run("plain", func(t *testing.T) {
		e := rawDecode(t, fakeEventBody("+OK done\n", "Event-Name", "BACKGROUND_JOB", "Hangup-Cause", "NORMAL_CLEARING",
			"Hangup-Cause", "USER_BUSY", "Caller-Caller-ID-Name", "Анна Петрова"))
		var got raw
		if err := json.Unmarshal(rawEvent("lab", e, at), &got); err != nil {
			t.Fatal(err)
		}
		if got.Type != "pbx.raw" || got.PBX != "lab" || !got.Time.Equal(at) || got.Data["Event-Name"] != "BACKGROUND_JOB" ||
			got.Data["Caller-Caller-ID-Name"] != "Анна Петрова" || got.Data["_body"] != "+OK done\n" {
			t.Fatalf("%+v", got)
		}
		causes, ok := got.Data["Hangup-Cause"].([]any)
		if !ok || len(causes) != 2 || causes[1] != "USER_BUSY" {
			t.Fatalf("repeated header: %#v", got.Data["Hangup-Cause"])
		}
	})
	t.Run("json", func(t *testing.T) {
		e := rawDecode(t, fakeJSONEvent("", "Event-Name", "HEARTBEAT", "Up-Time", "0 years"))
		var got raw
		if err := json.Unmarshal(rawEvent("lab", e, at), &got); err != nil {
			t.Fatal(err)
		}
		if got.Data["Event-Name"] != "HEARTBEAT" || got.Data["Up-Time"] != "0 years" {
			t.Fatalf("%+v", got)
		}
	})
	t.Run("invalid json", func(t *testing.T) {
		body := `{"Event-Name": "HEARTBEAT", `
		b := []byte("Content-Length: " + strconv.Itoa(len(body)) + "\nContent-Type: text/event-json\n\n" + body)
		var got struct{ Data string }
		if err := json.Unmarshal(rawEvent("lab", rawDecode(t, b), at), &got); err != nil || got.Data != body {
			t.Fatalf("%v %+v", err, got)
		}
	})
}
