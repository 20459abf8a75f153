package esl

import (
	"bytes"
	"errors"
	"testing"
)

func TestWriteCommand(t *testing.T) {
	tests := []struct {
		cmd     string
		headers []string
		want    string
		err     bool
	}{
		{"auth labsecret", nil, "auth labsecret\n\n", false},
		{"event plain ALL", nil, "event plain ALL\n\n", false},
		{"api show channels as json", nil, "api show channels as json\n\n", false},
		{"bgapi originate user/2001 &park", []string{"Job-UUID: j-1"}, "bgapi originate user/2001 &park\nJob-UUID: j-1\n\n", false},
		{"sendmsg abc", []string{"call-command: execute", "execute-app-name: answer"}, "sendmsg abc\ncall-command: execute\nexecute-app-name: answer\n\n", false},
		{"api status\n\napi shutdown", nil, "", true},
		{"auth x\r", nil, "", true},
		{"", nil, "", true},
		{"api status", []string{"X: a\nY: b"}, "", true},
		{"api status", []string{""}, "", true},
		{"api status", []string{"nocolon"}, "", true},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		err := NewWriter(&buf).WriteCommand(tt.cmd, tt.headers...)
		if tt.err {
			if !errors.Is(err, ErrInjection) || buf.Len() != 0 {
				t.Errorf("%q: err %v, wrote %q", tt.cmd, err, buf.String())
			}
			continue
		}
		if err != nil || buf.String() != tt.want {
			t.Errorf("%q: %v, wrote %q", tt.cmd, err, buf.String())
		}
	}
}
