package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "cb.yaml")
	os.WriteFile(file, []byte("listen: 127.0.0.1:9000\ndb: file.db\npbx:\n  - {id: office, kind: sim, extensions: 20, rate: 2, tenant: acme}\n"), 0o600)
	rate := 7.0
	tests := []struct {
		name       string
		path       string
		env        map[string]string
		o          Overrides
		listen, db string
		rate       float64
		exts       int
		id         string
	}{
		{"defaults", "", nil, Overrides{}, "127.0.0.1:8080", "./callbridge.db", DefaultSimRate, 8, "sim"},
		{"file", file, nil, Overrides{}, "127.0.0.1:9000", "file.db", 2, 20, "office"},
		{"env over file", file, map[string]string{"CALLBRIDGE_LISTEN": "127.0.0.1:9001", "CALLBRIDGE_DB": "env.db", "CALLBRIDGE_SIM_RATE": "3"}, Overrides{}, "127.0.0.1:9001", "env.db", 3, 20, "office"},
		{"flags over env", file, map[string]string{"CALLBRIDGE_LISTEN": "127.0.0.1:9001", "CALLBRIDGE_SIM_RATE": "3"}, Overrides{Listen: "127.0.0.1:9002", DB: "flag.db", SimRate: &rate}, "127.0.0.1:9002", "flag.db", 7, 20, "office"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(tt.path, env(tt.env), tt.o)
			if err != nil {
				t.Fatal(err)
			}
			if c.Listen != tt.listen || c.DB != tt.db || len(c.PBX) != 1 || *c.PBX[0].Rate != tt.rate || c.PBX[0].Extensions != tt.exts || c.PBX[0].ID != tt.id {
				t.Fatalf("got listen %s db %s pbx %+v", c.Listen, c.DB, c.PBX)
			}
		})
	}
}

func TestLoadRejects(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, yaml string
		env        map[string]string
		want       string
	}{
		{"unknown key", "lisen: x\n", nil, "field lisen not found"},
		{"not yaml", "pbx: [\n", nil, "invalid"},
		{"bad listen", "listen: nowhere\n", nil, "listen"},
		{"bad sync", "sync: sometimes\n", nil, "sync"},
		{"unknown kind", "pbx: [{id: a, kind: nortel}]\n", nil, `kind "nortel" is not supported`},
		{"missing kind", "pbx: [{id: a}]\n", nil, "kind is required"},
		{"duplicate id", "pbx: [{id: a, kind: sim}, {id: a, kind: sim}]\n", nil, "used twice"},
		{"too many extensions", "pbx: [{id: a, kind: sim, extensions: 10001}]\n", nil, "extensions 10001"},
		{"bad id", "pbx: [{id: 'a b', kind: sim}]\n", nil, "id \"a b\""},
		{"bad env rate", "", map[string]string{"CALLBRIDGE_SIM_RATE": "fast"}, "CALLBRIDGE_SIM_RATE"},
		{"negative rate", "pbx: [{id: a, kind: sim, rate: -1}]\n", nil, "rate -1"},
		{"bad level", "log_level: loud\n", nil, "log_level"},
		{"short ws token secret", "ws_token_secret: short\n", nil, "ws_token_secret: at least 16"},
		{"freeswitch without password", "pbx: [{id: fs, kind: freeswitch, address: 127.0.0.1:8021}]\n", nil, "password is required"},
		{"freeswitch bad address", "pbx: [{id: fs, kind: freeswitch, address: pbx, password: x}]\n", nil, "the event socket listens on 8021"},
		{"freeswitch bad channel", "pbx: [{id: fs, kind: freeswitch, address: 127.0.0.1:8021, password: x, dialplan: {extension_channel: user/101}}]\n", nil, "must contain {ext}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_")+".yaml")
			os.WriteFile(path, []byte(tt.yaml), 0o600)
			_, err := Load(path, env(tt.env), Overrides{})
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want ErrInvalid containing %q", err, tt.want)
			}
		})
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml"), env(nil), Overrides{}); err == nil {
		t.Error("a missing file loads")
	}
}

func TestSecretsNeverPrinted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cb.yaml")
	os.WriteFile(path, []byte("pbx:\n  - {id: office, kind: asterisk, address: 127.0.0.1:5038, username: cti, secret: hunter2}\n  - {id: fs, kind: freeswitch, address: 127.0.0.1:8021, password: labsecret}\n"), 0o600)
	c, err := Load(path, env(nil), Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	if c.PBX[0].Secret != "hunter2" || c.PBX[1].Password != "labsecret" {
		t.Fatalf("secrets not loaded: %q %q", string(c.PBX[0].Secret), string(c.PBX[1].Password))
	}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		if s := fmt.Sprintf(format, c); strings.Contains(s, "hunter2") || strings.Contains(s, "labsecret") {
			t.Errorf("%s prints a secret: %s", format, s)
		}
	}
}
