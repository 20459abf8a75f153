package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"callbridge/internal/auth"
)

func TestUnauthorized(t *testing.T) {
	e := newEnv(t)
	unknown := "cb_" + strings.Repeat("Z", 43)
	tests := []struct {
		name   string
		header string
		leak   string // must not appear in the log
		reason string
	}{
		{"no header", "", "", "no Authorization header"},
		{"wrong scheme", "Basic YWRtaW46c2VjcmV0", "YWRtaW46c2VjcmV0", "not a Bearer authorization"},
		{"empty bearer", "Bearer ", "", "empty bearer key"},
		{"unknown key", "Bearer " + unknown, unknown, "unknown key"},
		{"not a key", "Bearer hunter2-secret", "hunter2-secret", "unknown key"},
		{"key of another header form", "bearer " + e.keys["admin"] + "x", e.keys["admin"], "unknown key"},
	}
	paths := []string{"/api/v1/calls", "/api/v1/calls/x", "/api/v1/events"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, path := range paths {
				r := e.do(http.MethodGet, path, "", nil, "Authorization", tt.header)
				problem(t, r, http.StatusUnauthorized)
				if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
					t.Fatalf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
				}
				if tt.leak != "" && strings.Contains(string(r.body), tt.leak) {
					t.Fatal("the answer repeats the credential")
				}
			}
			logs := e.logs.String()
			if !strings.Contains(logs, "reason=\""+tt.reason+"\"") {
				t.Fatalf("no rejection logged with reason %q:\n%s", tt.reason, logs)
			}
			if tt.leak != "" && strings.Contains(logs, tt.leak) {
				t.Fatalf("the log contains the credential:\n%s", logs)
			}
		})
	}

	t.Run("a POST is refused before its body is read", func(t *testing.T) {
		r := e.do(http.MethodPost, "/api/v1/calls", "", strings.NewReader(`{"from":"101","to":"102"}`))
		problem(t, r, http.StatusUnauthorized)
		if len(e.pbx.commands()) != 0 {
			t.Fatal("an unauthenticated originate reached the PBX")
		}
	})

	t.Run("a removed key stops working", func(t *testing.T) {
		m := auth.Manager{Store: e.st, Auth: e.auth}
		key, err := m.Add(context.Background(), "", "temp", "integration", "")
		if err != nil {
			t.Fatal(err)
		}
		e.keys["temp"] = key
		if r := e.get("/api/v1/calls", key); r.status != http.StatusOK {
			t.Fatalf("status %d", r.status)
		}
		if err := m.Remove(context.Background(), "", "temp"); err != nil {
			t.Fatal(err)
		}
		problem(t, e.get("/api/v1/calls", key), http.StatusUnauthorized)
	})

	t.Run("lowercase scheme is accepted", func(t *testing.T) {
		r := e.do(http.MethodGet, "/api/v1/calls", "", nil, "Authorization", "bearer "+e.keys["crm"])
		if r.status != http.StatusOK {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
	})
}
