package api_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"callbridge/internal/api"
)

func TestOperational(t *testing.T) {
	e := newEnv(t)
	// Some traffic for the request counter.
	e.get("/api/v1/calls", e.keys["crm"])
	e.get("/api/v1/calls", "")

	tests := []struct {
		name     string
		path     string
		status   int
		ctype    string
		contains []string
	}{
		{"healthz", "/healthz", http.StatusOK, "text/plain", []string{"ok"}},
		{"readyz", "/readyz", http.StatusOK, "text/plain", []string{"ok"}},
		{"metrics", "/metrics", http.StatusOK, "text/plain", []string{
			"callbridge_updates_applied_total",
			`callbridge_http_requests_total{code="200",route="GET /api/v1/calls"} 1`,
			`callbridge_http_requests_total{code="401",route="GET /api/v1/calls"} 1`,
		}},
		{"openapi without a key", "/api/v1/openapi.json", http.StatusOK, "application/openapi+json", []string{
			`"openapi":"3.1.0"`, `"/api/v1/calls"`, `"/api/v1/calls/{id}"`, `"/api/v1/events"`, `"bearer"`, `"additionalProperties":false`}},
		{"docs without a key", "/api/v1/docs", http.StatusOK, "text/html", []string{"/api/v1/openapi"}},
		{"unknown API path", "/api/v1/nothing", http.StatusNotFound, "application/problem+json", []string{`"status":404`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.get(tt.path, "")
			if r.status != tt.status {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, tt.ctype) {
				t.Fatalf("Content-Type %q, want %q", ct, tt.ctype)
			}
			for _, s := range tt.contains {
				if !strings.Contains(string(r.body), s) {
					t.Errorf("body lacks %q", s)
				}
			}
		})
	}
	t.Run("metrics route label for unmatched paths", func(t *testing.T) {
		e.get("/random/"+strings.Repeat("a", 10), "")
		r := e.get("/metrics", "")
		if !strings.Contains(string(r.body), `route="unmatched"`) || strings.Contains(string(r.body), "/random/") {
			t.Fatal("unmatched paths are not folded into one label")
		}
	})
}

func TestNotReady(t *testing.T) {
	e := newEnv(t)
	h, err := api.New(api.Config{Hub: e.hub, Auth: e.auth, Logger: slog.New(slog.NewTextHandler(e.logs, nil)),
		Registerer: e.reg, // the same registry twice: the counter is shared, not an error
		Ready:      func(context.Context) error { return errors.New("store at /secret/path is down") }})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	r := response{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
	problem(t, r, http.StatusServiceUnavailable)
	if strings.Contains(string(r.body), "/secret/path") {
		t.Fatal("readiness detail leaks the cause")
	}
	if !strings.Contains(e.logs.String(), "/secret/path") {
		t.Fatal("the cause is not logged")
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusNotFound {
		t.Fatalf("/metrics without a gatherer: %d", rec.Code)
	}
}

func TestNewRequires(t *testing.T) {
	if _, err := api.New(api.Config{}); err == nil || !strings.HasPrefix(err.Error(), "api: ") {
		t.Fatalf("New without a hub: %v", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "callbridge_http_requests_total", Help: "clash"}))
	e := newEnv(t)
	if _, err := api.New(api.Config{Hub: e.hub, Auth: e.auth, Registerer: reg}); err == nil {
		t.Fatal("a clashing metric is not reported")
	}
}
