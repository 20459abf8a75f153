package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestCORSAndTLSDefaults(t *testing.T) {
	c, err := Load("", env(nil), Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	if c.TLS.Mode != TLSOff || c.TLS.HTTP != HTTPRedirect || c.TLS.Enabled() || c.CORS.MaxAge != 600 || len(c.CORS.Origins) != 0 {
		t.Fatalf("defaults: tls %+v cors %+v", c.TLS, c.CORS)
	}
}

func TestCORSAndTLSLoad(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	os.WriteFile(cert, []byte("x"), 0o600)
	os.WriteFile(key, []byte("x"), 0o600)
	write := func(name, yaml string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(yaml), 0o600)
		return p
	}
	tests := []struct {
		name      string
		yaml      string
		env       map[string]string
		origins   []string
		maxAge    int
		mode      string
		http      string
		httpLn    string
		cert, key string
	}{
		{"cors file", "cors: {origins: ['https://crm.example.com', '*'], max_age: 60}\n", nil,
			[]string{"https://crm.example.com", "*"}, 60, TLSOff, HTTPRedirect, "", "", ""},
		{"cors env over file", "cors: {origins: ['https://a.example']}\n", map[string]string{"CALLBRIDGE_CORS_ORIGINS": "https://b.example, http://localhost:3000 ,"},
			[]string{"https://b.example", "http://localhost:3000"}, 600, TLSOff, HTTPRedirect, "", "", ""},
		{"self-signed next to db", "db: /var/lib/cb/cb.db\ntls: {mode: self-signed, http: refuse, http_listen: '127.0.0.1:8081'}\n", nil,
			nil, 600, TLSSelfSigned, HTTPRefuse, "127.0.0.1:8081", "/var/lib/cb/cb.db.tls.crt", "/var/lib/cb/cb.db.tls.key"},
		{"file", "tls: {mode: file, cert: " + cert + ", key: " + key + "}\n", nil,
			nil, 600, TLSFile, HTTPRedirect, "", cert, key},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(write(strings.ReplaceAll(tt.name, " ", "_")+".yaml", tt.yaml), env(tt.env), Overrides{})
			if err != nil {
				t.Fatal(err)
			}
			gotCert, gotKey := c.TLS.Paths(c.DB)
			if !slices.Equal(c.CORS.Origins, tt.origins) || c.CORS.MaxAge != tt.maxAge || c.TLS.Mode != tt.mode ||
				c.TLS.HTTP != tt.http || c.TLS.HTTPListen != tt.httpLn || gotCert != tt.cert || gotKey != tt.key {
				t.Fatalf("got cors %+v tls %+v paths %s %s", c.CORS, c.TLS, gotCert, gotKey)
			}
		})
	}
}

func TestCORSAndTLSRejects(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "k.pem")
	os.WriteFile(key, []byte("x"), 0o600)
	tests := []struct{ name, yaml, want string }{
		{"bad mode", "tls: {mode: on}\n", `tls.mode "on": want off, file or self-signed`},
		{"file without cert", "tls: {mode: file}\n", "mode file needs cert and key"},
		{"unreadable cert", "tls: {mode: file, cert: " + filepath.Join(dir, "missing.pem") + ", key: " + key + "}\n", "tls.cert"},
		{"bad http", "tls: {mode: self-signed, http: ignore}\n", `tls.http "ignore": want redirect or refuse`},
		{"bad http_listen", "tls: {mode: self-signed, http_listen: nowhere}\n", "tls.http_listen"},
		{"http_listen same as listen", "tls: {mode: self-signed, http_listen: '127.0.0.1:8080'}\n", "same address"},
		{"http_listen without tls", "tls: {http_listen: '127.0.0.1:8081'}\n", "only with tls.mode"},
		{"half self-signed paths", "tls: {mode: self-signed, cert: a.crt}\n", "both cert and key"},
		{"origin with path", "cors: {origins: ['https://crm.example.com/app']}\n", "cors.origins"},
		{"origin without scheme", "cors: {origins: ['crm.example.com']}\n", "cors.origins"},
		{"negative max_age", "cors: {max_age: -1}\n", "cors.max_age"},
		{"unknown tls key", "tls: {mdoe: off}\n", "field mdoe not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_")+".yaml")
			os.WriteFile(path, []byte(tt.yaml), 0o600)
			_, err := Load(path, env(nil), Overrides{})
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want ErrInvalid containing %q", err, tt.want)
			}
		})
	}
}
