// Package hubtest runs a real hub on a temporary SQLite file for connector tests:
// what a PBX connector reports is read back as the CRM would see it.
package hubtest

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"

	"callbridge/internal/call"
	"callbridge/internal/hub"
	"callbridge/internal/store"
	"callbridge/internal/store/sqlite"
)

// Env is a running hub, its store and its log.
type Env struct {
	St   *sqlite.DB
	H    *hub.Hub
	Logs *SyncBuf
}

// Start runs a hub with conns on a new SQLite file; it stops on t.Cleanup.
func Start(t testing.TB, conns ...hub.Connector) *Env {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "cb.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	logs := &SyncBuf{}
	h, err := hub.New(hub.Config{Store: st, Connectors: conns, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		st.Close()
	})
	return &Env{St: st, H: h, Logs: logs}
}

// Calls returns the default tenant's calls, newest first.
func (e *Env) Calls(t testing.TB) []*call.Call {
	t.Helper()
	page, err := e.St.Calls(context.Background(), store.CallFilter{Tenant: store.DefaultTenant, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return page.Calls
}

// Events returns the logged events of type typ as JSON, oldest first.
func (e *Env) Events(t testing.TB, typ call.EventType) []string {
	t.Helper()
	evs, err := e.St.Events(context.Background(), store.EventFilter{Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ev := range evs {
		if ev.Type == typ {
			out = append(out, string(ev.Raw))
		}
	}
	return out
}

// Connected reports whether the hub sees PBX id connected.
func (e *Env) Connected(id string) bool {
	for _, p := range e.H.PBXs(store.DefaultTenant) {
		if p.ID == id && p.Connected {
			return true
		}
	}
	return false
}

// SyncBuf is a bytes.Buffer safe for a logger and a test to share.
type SyncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written.
func (s *SyncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
