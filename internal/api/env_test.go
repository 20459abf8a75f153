package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"callbridge/internal/api"
	"callbridge/internal/auth"
	"callbridge/internal/call"
	"callbridge/internal/hub"
	"callbridge/internal/store"
	"callbridge/internal/store/sqlite"
	"callbridge/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakePBX is a connector the test drives: it hands the test its sink and records
// the commands the hub routes to it.
type fakePBX struct {
	id      string
	started chan struct{}

	mu      sync.Mutex
	sink    hub.Sink
	cmds    []hub.Command
	err     error
	testErr error
}

func newFakePBX(id string) *fakePBX { return &fakePBX{id: id, started: make(chan struct{})} }

func (f *fakePBX) ID() string { return f.id }

func (f *fakePBX) Run(ctx context.Context, sink hub.Sink) error {
	f.mu.Lock()
	f.sink = sink
	f.mu.Unlock()
	close(f.started)
	<-ctx.Done()
	return nil
}

func (f *fakePBX) Control(_ context.Context, cmd hub.Command) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cmds = append(f.cmds, cmd)
	return f.err
}

// Test makes the fake a hub.Tester: it fails with the error set by setTestErr.
func (f *fakePBX) Test(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.testErr
}

func (f *fakePBX) setTestErr(err error) {
	f.mu.Lock()
	f.testErr = err
	f.mu.Unlock()
}

func (f *fakePBX) setErr(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

func (f *fakePBX) commands() []hub.Command {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]hub.Command(nil), f.cmds...)
}

func (f *fakePBX) update(u call.Update) {
	u.PBX = f.id
	f.mu.Lock()
	sink := f.sink
	f.mu.Unlock()
	sink.Update(u)
}

// syncBuffer is a log sink the server's goroutines and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// t0 is when the seeded history starts.
var t0 = time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)

type env struct {
	t    *testing.T
	st   *sqlite.DB
	hub  *hub.Hub
	auth *auth.Authenticator
	pbx  *fakePBX // default tenant
	acme *fakePBX // tenant "acme"
	srv  *httptest.Server
	logs *syncBuffer
	reg  *prometheus.Registry
	keys map[string]string
	// calls are the seeded calls' ids by name.
	calls map[string]string
}

// newEnv starts a hub on a fresh SQLite store with two fake PBXs (one per tenant),
// extensions, mappings and keys, and serves the API on 127.0.0.1.
func newEnv(t *testing.T, opts ...func(*api.Config)) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "cb.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	must(t, st.AddTenant(ctx, "acme"))
	must(t, st.UpsertExtensions(ctx, []store.Extension{
		{Tenant: "default", PBX: "pbx1", Number: "101", APIEnabled: true},
		{Tenant: "default", PBX: "pbx1", Number: "102", APIEnabled: true},
		{Tenant: "default", PBX: "pbx1", Number: "103", APIEnabled: false},
		{Tenant: "default", PBX: "ghost", Number: "104", APIEnabled: true},
		{Tenant: "acme", PBX: "pbx2", Number: "101", APIEnabled: true},
	}))
	must(t, st.AddMapping(ctx, store.Mapping{Tenant: "default", CRMUser: "alice", Extension: "101"}))
	must(t, st.AddMapping(ctx, store.Mapping{Tenant: "default", CRMUser: "bob", Extension: "102"}))
	must(t, st.AddMapping(ctx, store.Mapping{Tenant: "acme", CRMUser: "alice", Extension: "101"}))

	e := &env{t: t, st: st, pbx: newFakePBX("pbx1"), acme: newFakePBX("pbx2"), logs: &syncBuffer{},
		reg: prometheus.NewRegistry(), keys: map[string]string{}, calls: map[string]string{}}
	logger := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h, err := hub.New(hub.Config{Store: st, Logger: logger, Connectors: []hub.Connector{e.pbx, e.acme},
		Tenants: map[string]string{"pbx2": "acme"}, Metrics: hub.NewMetrics(e.reg)})
	if err != nil {
		t.Fatal(err)
	}
	e.hub = h
	hctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- h.Run(hctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("hub: %v", err)
		}
	})
	<-e.pbx.started
	<-e.acme.started

	m := auth.Manager{Store: st}
	for _, k := range []struct {
		name, tenant string
		scope        store.Scope
		user         string
	}{
		{"admin", "", store.ScopeAdmin, ""},
		{"crm", "", store.ScopeIntegration, ""},
		{"alice", "", store.ScopeUser, "alice"},
		{"bob", "", store.ScopeUser, "bob"},
		{"carol", "", store.ScopeUser, "carol"}, // no extension mapped
		{"acme", "acme", store.ScopeIntegration, ""},
		{"acme-alice", "acme", store.ScopeUser, "alice"},
	} {
		key, err := m.Add(ctx, k.tenant, k.name, k.scope, k.user)
		if err != nil {
			t.Fatal(err)
		}
		e.keys[k.name] = key
	}
	e.auth = auth.NewAuthenticator(st, 0)
	cfg := api.Config{Hub: h, Auth: e.auth, Logger: logger, Gatherer: e.reg, Registerer: e.reg, Version: "test"}
	for _, o := range opts {
		o(&cfg)
	}
	handler, err := api.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(handler)
	t.Cleanup(func() {
		e.srv.Close()
		logs := e.logs.String()
		for name, key := range e.keys {
			if strings.Contains(logs, key) {
				t.Errorf("the log contains key %s", name)
			}
		}
	})
	return e
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// seed plays a small history through the fake PBXs and waits until it is committed.
func (e *env) seed() {
	e.t.Helper()
	id := func(name string) string {
		e.calls[name] = uuid.NewString()
		return e.calls[name]
	}
	at := func(min, sec int) time.Time {
		return t0.Add(time.Duration(min)*time.Minute + time.Duration(sec)*time.Second)
	}
	p := e.pbx
	// c1: inbound to 101, answered, ended.
	p.update(call.Update{PBXCallID: "p-c1", CallID: id("c1"), Time: at(0, 0), Kind: call.KindRing, Direction: call.DirectionIn, Customer: "89066800404", Extensions: []string{"101"}})
	p.update(call.Update{PBXCallID: "p-c1", Time: at(0, 5), Kind: call.KindAnswer, Extension: "101"})
	p.update(call.Update{PBXCallID: "p-c1", Time: at(0, 50), Kind: call.KindEnd, Cause: "normal"})
	// c2: inbound to 102, not answered.
	p.update(call.Update{PBXCallID: "p-c2", CallID: id("c2"), Time: at(1, 0), Kind: call.KindRing, Direction: call.DirectionIn, Customer: "84951234567", Extensions: []string{"102"}})
	p.update(call.Update{PBXCallID: "p-c2", Time: at(1, 30), Kind: call.KindEnd, Disposition: call.DispositionNoAnswer})
	// c3: outbound from 101, in progress.
	p.update(call.Update{PBXCallID: "p-c3", CallID: id("c3"), Time: at(2, 0), Kind: call.KindRing, Direction: call.DirectionOut, Customer: "+79161234567", Extensions: []string{"101"}})
	p.update(call.Update{PBXCallID: "p-c3", Time: at(2, 10), Kind: call.KindAnswer, Extension: "101"})
	// c4: internal, 101 calls 102, ringing.
	p.update(call.Update{PBXCallID: "p-c4", CallID: id("c4"), Time: at(3, 0), Kind: call.KindRing, Direction: call.DirectionInternal, Customer: "101", Extensions: []string{"102"}})
	// c5: inbound to 103, busy.
	p.update(call.Update{PBXCallID: "p-c5", CallID: id("c5"), Time: at(4, 0), Kind: call.KindRing, Direction: call.DirectionIn, Customer: "84957654321", Extensions: []string{"103"}})
	p.update(call.Update{PBXCallID: "p-c5", Time: at(4, 1), Kind: call.KindEnd, Disposition: call.DispositionBusy})
	// a1: tenant acme, the same customer as c1, to acme's 101.
	e.acme.update(call.Update{PBXCallID: "p-a1", CallID: id("a1"), Time: at(5, 0), Kind: call.KindRing, Direction: call.DirectionIn, Customer: "89066800404", Extensions: []string{"101"}})

	want := map[string]call.State{"c1": call.StateEnded, "c2": call.StateEnded, "c3": call.StateActive, "c4": call.StateRinging, "c5": call.StateEnded}
	checkFor(e.t, func() error {
		for name, state := range want {
			c, err := e.st.Call(context.Background(), "default", e.calls[name])
			if err != nil {
				return err
			}
			if c.State != state {
				return errors.New(name + " is " + string(c.State))
			}
		}
		if _, err := e.st.Call(context.Background(), "acme", e.calls["a1"]); err != nil {
			return err
		}
		// Committed is not yet published: wait until the hub has published it all.
		if s, _ := e.st.LastSeq(context.Background()); e.hub.LastSeq() != s {
			return fmt.Errorf("published %d of %d", e.hub.LastSeq(), s)
		}
		return nil
	})
}

// checkFor polls cond until it holds or a deadline passes.
func checkFor(t *testing.T, cond func() error) {
	t.Helper()
	testutil.CheckFor(t, 10*time.Second, cond)
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// do sends a request with key (as a Bearer token unless empty).
func (e *env) do(method, path, key string, body io.Reader, hdr ...string) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}
}

func (e *env) get(path, key string) response {
	e.t.Helper()
	return e.do(http.MethodGet, path, key, nil)
}

// problem checks r is an RFC 9457 problem with status.
func problem(t *testing.T, r response, status int) map[string]any {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json", ct)
	}
	var p map[string]any
	r.json(t, &p)
	if int(p["status"].(float64)) != status {
		t.Fatalf("problem status %v, want %d", p["status"], status)
	}
	return p
}

func timeMin(n int) time.Duration { return time.Duration(n) * time.Minute }

// post sends a POST (with a JSON body unless body is empty) with key.
func (e *env) post(path, key, body string) response {
	e.t.Helper()
	if body == "" {
		return e.do(http.MethodPost, path, key, nil)
	}
	return e.do(http.MethodPost, path, key, strings.NewReader(body))
}

// waitCall waits until the call seeded as name is committed and published in state.
func (e *env) waitCall(tenant, name string, state call.State) {
	e.t.Helper()
	checkFor(e.t, func() error {
		c, err := e.st.Call(context.Background(), tenant, e.calls[name])
		if err != nil {
			return err
		}
		if c.State != state {
			return errors.New(name + " is " + string(c.State))
		}
		if s, _ := e.st.LastSeq(context.Background()); e.hub.LastSeq() != s {
			return fmt.Errorf("published %d of %d", e.hub.LastSeq(), s)
		}
		return nil
	})
}

// status reports a non-call event (extension or agent status) as the PBX would.
func (f *fakePBX) status(s hub.Status) {
	f.mu.Lock()
	sink := f.sink
	f.mu.Unlock()
	sink.Status(s)
}
