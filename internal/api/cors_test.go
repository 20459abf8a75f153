package api_test

import (
	"fmt"
	"testing"

	"callbridge/internal/api"
)

func TestCORS(t *testing.T) {
	const crm = "https://crm.example.com"
	const other = "https://evil.example"
	listed := api.CORS{Origins: []string{crm, "http://localhost:3000/"}, MaxAge: 600}
	anyOrigin := api.CORS{Origins: []string{"*"}, MaxAge: 60}
	preflight := func(origin string) []string {
		return []string{"Origin", origin, "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization, content-type"}
	}
	tests := []struct {
		name      string
		cors      api.CORS
		method    string
		path      string
		key       string
		hdr       []string
		status    int    // 0: any
		allow     string // expected Access-Control-Allow-Origin ("" none)
		preflight bool   // expect the preflight headers
		maxAge    string
	}{
		{"preflight, listed origin", listed, "OPTIONS", "/api/v1/calls", "", preflight(crm), 204, crm, true, "600"},
		{"preflight, listed with trailing slash in config", listed, "OPTIONS", "/api/v1/calls", "", preflight("http://localhost:3000"), 204, "http://localhost:3000", true, "600"},
		{"preflight, other origin", listed, "OPTIONS", "/api/v1/calls", "", preflight(other), 0, "", false, ""},
		{"actual, listed origin", listed, "GET", "/api/v1/calls", "crm", []string{"Origin", crm}, 200, crm, false, ""},
		{"actual, listed origin, no key", listed, "GET", "/api/v1/calls", "", []string{"Origin", crm}, 401, crm, false, ""},
		{"actual, other origin", listed, "GET", "/api/v1/calls", "crm", []string{"Origin", other}, 200, "", false, ""},
		{"actual, same origin (no Origin header)", listed, "GET", "/api/v1/calls", "crm", nil, 200, "", false, ""},
		{"preflight, any origin", anyOrigin, "OPTIONS", "/api/v1/calls/x/hangup", "", preflight(other), 204, other, true, "60"},
		{"actual, any origin", anyOrigin, "GET", "/healthz", "", []string{"Origin", other}, 200, other, false, ""},
		{"preflight, CORS off", api.CORS{}, "OPTIONS", "/api/v1/calls", "", preflight(crm), 0, "", false, ""},
		{"actual, CORS off", api.CORS{}, "GET", "/api/v1/calls", "crm", []string{"Origin", crm}, 200, "", false, ""},
	}
	// One server per policy, started by the parent test so it outlives the subtests.
	envs := map[string]*env{}
	for _, tt := range tests {
		if id := fmt.Sprint(tt.cors); envs[id] == nil {
			c := tt.cors
			envs[id] = newEnv(t, func(cfg *api.Config) { cfg.CORS = c })
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := *envs[fmt.Sprint(tt.cors)]
			e.t = t
			key := ""
			if tt.key != "" {
				key = e.keys[tt.key]
			}
			r := e.do(tt.method, tt.path, key, nil, tt.hdr...)
			if tt.status != 0 && r.status != tt.status {
				t.Errorf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if got := r.header.Get("Access-Control-Allow-Origin"); got != tt.allow {
				t.Errorf("Allow-Origin %q, want %q", got, tt.allow)
			}
			if got := r.header.Get("Access-Control-Allow-Credentials"); got != "" {
				t.Errorf("Allow-Credentials %q sent", got)
			}
			if tt.allow != "" && r.header.Get("Vary") != "Origin" {
				t.Errorf("Vary %q, want Origin", r.header.Values("Vary"))
			}
			methods, headers, maxAge := r.header.Get("Access-Control-Allow-Methods"), r.header.Get("Access-Control-Allow-Headers"), r.header.Get("Access-Control-Max-Age")
			if tt.preflight {
				if methods != "GET, POST, PUT, DELETE" || headers != "Authorization, Content-Type" || maxAge != tt.maxAge {
					t.Errorf("preflight headers: methods %q headers %q max-age %q", methods, headers, maxAge)
				}
			} else if methods != "" || headers != "" || maxAge != "" {
				t.Errorf("preflight headers on a non-preflight answer: %q %q %q", methods, headers, maxAge)
			}
		})
	}
}
