package api

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"callbridge/internal/auth"
	"callbridge/internal/call"
	"callbridge/internal/hub"
	"callbridge/internal/store"
	"callbridge/internal/store/sqlite"
)

// fanPBX is a connector that hands the test its sink.
type fanPBX struct {
	started chan struct{}
	sink    hub.Sink
}

func (f *fanPBX) ID() string { return "pbx1" }

func (f *fanPBX) Run(ctx context.Context, sink hub.Sink) error {
	f.sink = sink
	close(f.started)
	<-ctx.Done()
	return nil
}

func (f *fanPBX) Control(context.Context, hub.Command) error { return nil }

func (f *fanPBX) ring(ext string) {
	id := uuid.NewString()
	f.sink.Update(call.Update{PBX: "pbx1", PBXCallID: "p-" + id, CallID: id, Time: time.Now(), Kind: call.KindRing,
		Direction: call.DirectionIn, Customer: "89066800404", Extensions: []string{ext}})
}

func newFanHub(t *testing.T) (*hub.Hub, *fanPBX) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "cb.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.UpsertExtensions(ctx, []store.Extension{
		{Tenant: "default", PBX: "pbx1", Number: "101", APIEnabled: true},
		{Tenant: "default", PBX: "pbx1", Number: "102", APIEnabled: true},
	}); err != nil {
		t.Fatal(err)
	}
	pbx := &fanPBX{started: make(chan struct{})}
	h, err := hub.New(hub.Config{Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Connectors: []hub.Connector{pbx}})
	if err != nil {
		t.Fatal(err)
	}
	hctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- h.Run(hctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("hub: %v", err)
		}
	})
	<-pbx.started
	return h, pbx
}

func fanSub(exts ...string) *wsSub {
	return &wsSub{all: true, types: map[call.EventType]bool{}, exts: exts, until: time.Now().Add(time.Hour)}
}

// TestWSFanout: the dispatcher gives each connection only the events of its
// subscription, and a connection that never takes its events is dropped as slow
// while the others keep receiving.
func TestWSFanout(t *testing.T) {
	h, pbx := newFanHub(t)
	f := newWSFanout(h, slog.New(slog.NewTextHandler(io.Discard, nil)))
	p := auth.Principal{Tenant: "default", Scope: store.ScopeIntegration, ClientID: "crm"}

	a, b, slow := f.add(p), f.add(p), f.add(p)
	f.index(a, fanSub("101"))
	f.index(b, fanSub("102"))
	f.index(slow, fanSub("101"))

	const n = wsQueue + 100 // rings per extension: more than the slow queue holds
	var wg sync.WaitGroup
	got := make([][]int64, 2)
	for i, c := range []*wsFanConn{a, b} {
		ext := []string{"101", "102"}[i]
		wg.Go(func() {
			timeout := time.After(60 * time.Second)
			for len(got[i]) < n {
				select {
				case <-c.ready:
					for _, ev := range c.take(nil) {
						if !ev.Concerns(ext, "") || slices.Contains(ev.Extensions, map[string]string{"101": "102", "102": "101"}[ext]) {
							t.Errorf("%s got an event of %v", ext, ev.Extensions)
							return
						}
						got[i] = append(got[i], ev.Seq)
					}
				case <-c.gone:
					t.Errorf("%s dropped (slow %v)", ext, c.slow)
					return
				case <-timeout:
					t.Errorf("%s: %d events of %d", ext, len(got[i]), n)
					return
				}
			}
		})
	}
	for range n {
		pbx.ring("101")
		pbx.ring("102")
	}
	wg.Wait()
	select {
	case <-slow.gone:
		if !slow.slow {
			t.Fatal("the slow connection was dropped, but not as slow")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the slow connection was not dropped")
	}
	for i, seqs := range got {
		if !slices.IsSorted(seqs) || len(slices.Compact(slices.Clone(seqs))) != len(seqs) {
			t.Fatalf("connection %d: seqs out of order or repeated", i)
		}
	}
	// Dropped, it is indexed nowhere: the others still receive.
	pbx.ring("101")
	timeout := time.After(10 * time.Second)
	for next := []*call.Event(nil); len(next) == 0; {
		select {
		case <-a.ready:
			next = a.take(nil)
		case <-timeout:
			t.Fatal("no event after the slow connection was dropped")
		}
		for _, ev := range next {
			if !ev.Concerns("101", "") {
				t.Fatalf("got %v", ev.Extensions)
			}
		}
	}
	for _, c := range []*wsFanConn{a, b, slow} {
		f.remove(c)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.run != nil || len(f.tenants) != 0 || len(f.conns) != 0 {
		t.Fatalf("after the last connection: run %v, index %v, conns %d", f.run, f.tenants, len(f.conns))
	}
}
