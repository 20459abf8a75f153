package api_test

import (
	"errors"
	"net/http"
	"testing"
)

func TestPBXList(t *testing.T) {
	e := newEnv(t)
	var got struct {
		PBX []struct {
			ID        string `json:"id"`
			Connected bool   `json:"connected"`
		} `json:"pbx"`
	}
	tests := []struct {
		key  string
		want []string
	}{
		{"admin", []string{"pbx1"}},
		{"crm", []string{"pbx1"}},
		{"alice", []string{"pbx1"}},
		{"acme", []string{"pbx2"}}, // another tenant sees only its own PBX
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			r := e.get("/api/v1/pbx", e.keys[tt.key])
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			r.json(t, &got)
			if len(got.PBX) != len(tt.want) || got.PBX[0].ID != tt.want[0] {
				t.Fatalf("pbx %+v, want %v", got.PBX, tt.want)
			}
		})
	}
	problem(t, e.get("/api/v1/pbx", ""), http.StatusUnauthorized)
}

func TestPBXTest(t *testing.T) {
	e := newEnv(t)
	var got struct {
		ID     string `json:"id"`
		OK     bool   `json:"ok"`
		Reason string `json:"reason"`
	}
	r := e.do(http.MethodPost, "/api/v1/pbx/pbx1/test", e.keys["crm"], nil)
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	r.json(t, &got)
	if !got.OK || got.Reason != "" {
		t.Fatalf("test of a healthy PBX: %+v", got)
	}
	e.pbx.setTestErr(errors.New("ami: login: Authentication failed"))
	r = e.do(http.MethodPost, "/api/v1/pbx/pbx1/test", e.keys["admin"], nil)
	r.json(t, &got)
	if r.status != http.StatusOK || got.OK || got.Reason == "" {
		t.Fatalf("test of a failing PBX: %d %+v", r.status, got)
	}
	problem(t, e.do(http.MethodPost, "/api/v1/pbx/pbx1/test", e.keys["alice"], nil), http.StatusForbidden)
	problem(t, e.do(http.MethodPost, "/api/v1/pbx/pbx2/test", e.keys["crm"], nil), http.StatusNotFound) // another tenant's
	problem(t, e.do(http.MethodPost, "/api/v1/pbx/nope/test", e.keys["crm"], nil), http.StatusNotFound)
}
