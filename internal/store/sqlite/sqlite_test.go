package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"callbridge/internal/call"
	"callbridge/internal/store"
	"callbridge/internal/store/sqlite"
	"callbridge/internal/store/storetest"
)

// TestMain runs the tests, removes the replay benchmark's store and fails the run if
// a test left a store open (goroutines of its connection pools still running).
func TestMain(m *testing.M) {
	code := m.Run()
	removeReplayDB()
	if code == 0 {
		// Every store a test opened was closed: no pool goroutine is left.
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// open opens a store at path and closes it when the test ends.
func open(t testing.TB, path string, opt sqlite.Options) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(t.Context(), path, opt)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return db
}

// TestConformance runs the store conformance suite against SQLite, at both sync
// levels, each subtest on its own file.
func TestConformance(t *testing.T) {
	for _, level := range []sqlite.Sync{sqlite.SyncNormal, sqlite.SyncFull} {
		t.Run("sync="+string(level), func(t *testing.T) {
			if level == sqlite.SyncFull && testing.Short() {
				t.Skip("short")
			}
			storetest.Run(t, func(t *testing.T) store.Store {
				return open(t, filepath.Join(t.TempDir(), "callbridge.db"), sqlite.Options{Sync: level})
			})
		})
	}
}

func commit(t testing.TB, db store.Store, calls []*call.Call, evs ...*call.Event) {
	t.Helper()
	if err := db.Commit(t.Context(), &store.Batch{Calls: storetest.Rows(t, calls...), Events: evs}); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

// TestReopenKeepsData closes and reopens a file: calls, admin data and the log are
// kept, and seqs continue after the last one.
func TestReopenKeepsData(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "callbridge.db")
	db, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := storetest.NewCall(store.DefaultTenant, "call-1", storetest.Base, "101")
	c.Acc.TalkNS = 42
	commit(t, db, []*call.Call{c},
		storetest.NewEvent(t, call.EventRinging, c, storetest.Base),
		storetest.NewEvent(t, call.EventDTMF, c, storetest.Base),
		storetest.NewEvent(t, call.EventDTMF, c, storetest.Base))
	if err := db.AddTenant(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if err := db.AddIntegration(ctx, store.Integration{Tenant: "acme", ClientID: "crm", Scope: store.ScopeAdmin, KeyHash: []byte("h"), KeyPrefix: "cb_"}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = open(t, path, sqlite.Options{Sync: sqlite.SyncFull})
	if n, err := db.LastSeq(ctx); err != nil || n != 3 {
		t.Fatalf("LastSeq after reopen = %d, %v; want 3", n, err)
	}
	got, err := db.Call(ctx, store.DefaultTenant, "call-1")
	if err != nil {
		t.Fatalf("Call after reopen: %v", err)
	}
	if got.Acc.TalkNS != 42 || got.Tenant != store.DefaultTenant {
		t.Fatalf("call after reopen: tenant %q acc %+v", got.Tenant, got.Acc)
	}
	if in, err := db.IntegrationByHash(ctx, []byte("h")); err != nil || in.Tenant != "acme" {
		t.Fatalf("IntegrationByHash after reopen = %+v, %v", in, err)
	}

	e4 := storetest.NewEvent(t, call.EventEnded, c, storetest.Base)
	e5 := storetest.NewEvent(t, call.EventRecorded, c, storetest.Base)
	commit(t, db, []*call.Call{c}, e4, e5)
	if e4.Seq != 4 || e5.Seq != 5 {
		t.Fatalf("seqs after reopen %d, %d; want 4, 5", e4.Seq, e5.Seq)
	}
	evs, err := db.Events(ctx, store.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range evs {
		if e.Seq != int64(i+1) {
			t.Fatalf("events after reopen: position %d has seq %d", i, e.Seq)
		}
	}
	if len(evs) != 5 {
		t.Fatalf("events after reopen: %d, want 5", len(evs))
	}
}

// TestMigrationsIdempotent opens the same file repeatedly, also while it is open:
// every migration is applied exactly once and the seed rows are not duplicated.
func TestMigrationsIdempotent(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "callbridge.db")
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("migrations: %v, %v", files, err)
	}
	for i := range 3 {
		db, err := sqlite.Open(ctx, path, sqlite.Options{})
		if err != nil {
			t.Fatalf("Open #%d: %v", i+1, err)
		}
		// A second Open while the first is open also finds everything applied.
		db2, err := sqlite.Open(ctx, path, sqlite.Options{})
		if err != nil {
			db.Close()
			t.Fatalf("concurrent Open #%d: %v", i+1, err)
		}
		if err := db.AddTenant(ctx, fmt.Sprintf("t%d", i)); err != nil {
			t.Fatalf("AddTenant after Open #%d: %v", i+1, err)
		}
		ts, err := db2.Tenants(ctx)
		if err != nil || len(ts) != i+2 || ts[0].Name != store.DefaultTenant {
			t.Fatalf("Tenants after Open #%d = %+v, %v; want default and %d more (the seed row is inserted once)", i+1, ts, err, i+1)
		}
		if err := errors.Join(db2.Close(), db.Close()); err != nil {
			t.Fatal(err)
		}
	}

	raw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	rows, err := raw.QueryContext(ctx, `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var versions []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		versions = append(versions, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, f := range files {
		want = append(want, strings.TrimSuffix(filepath.Base(f), ".sql"))
	}
	if strings.Join(versions, ",") != strings.Join(want, ",") {
		t.Fatalf("schema_migrations = %v, want %v once each", versions, want)
	}
}

// TestOpenInvalid checks Open refuses a bad sync level or path with ErrInvalid and
// creates no file.
func TestOpenInvalid(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		path string
		opt  sqlite.Options
	}{
		{"bad sync", filepath.Join(dir, "a.db"), sqlite.Options{Sync: "sometimes"}},
		{"upper-case sync", filepath.Join(dir, "b.db"), sqlite.Options{Sync: "FULL"}},
		{"sync off", filepath.Join(dir, "c.db"), sqlite.Options{Sync: "off"}},
		{"empty path", "", sqlite.Options{}},
	} {
		db, err := sqlite.Open(t.Context(), tc.path, tc.opt)
		if err == nil {
			db.Close()
			t.Errorf("%s: Open succeeded, want an error", tc.name)
			continue
		}
		if !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: error %v, want ErrInvalid", tc.name, err)
		}
		if tc.path != "" {
			if _, err := os.Stat(tc.path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s: a refused Open created %s", tc.name, tc.path)
			}
		}
	}
}

// TestConcurrentReaders reads the log, calls and LastSeq from several goroutines while
// batches are committed (run with -race). A reader must never see part of a batch, a
// gap in the log, or a LastSeq ahead of what Events returns.
func TestConcurrentReaders(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	db := open(t, filepath.Join(t.TempDir(), "callbridge.db"), sqlite.Options{Readers: 4})
	const batches, perBatch, nCalls = 150, 16, 8

	var wg sync.WaitGroup
	errc := make(chan error, 16)
	fail := func(err error) {
		select {
		case errc <- err:
		default:
		}
		cancel()
	}
	done := make(chan struct{})
	for r := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var after int64
			for {
				select {
				case <-done:
					return
				case <-ctx.Done():
					return
				default:
				}
				last, err := db.LastSeq(ctx)
				if err != nil {
					fail(err)
					return
				}
				evs, err := db.Events(ctx, store.EventFilter{After: after, Limit: 1000})
				if err != nil {
					fail(err)
					return
				}
				for _, e := range evs {
					if e.Seq != after+1 {
						fail(fmt.Errorf("reader %d: seq %d after %d: a gap", r, e.Seq, after))
						return
					}
					after = e.Seq
				}
				// Whatever LastSeq reported was committed before it was reported.
				if after < last && len(evs) < 1000 {
					fail(fmt.Errorf("reader %d: LastSeq %d but Events stopped at %d", r, last, after))
					return
				}
				// Batches are atomic: a reader sees whole batches only.
				if len(evs) < 1000 && after%perBatch != 0 {
					fail(fmt.Errorf("reader %d: log ends at seq %d, inside a batch of %d", r, after, perBatch))
					return
				}
				switch r % 3 {
				case 0:
					p, err := db.Calls(ctx, store.CallFilter{Tenant: store.DefaultTenant, Limit: 5})
					if err != nil {
						fail(err)
						return
					}
					for _, c := range p.Calls {
						if c.Tenant != store.DefaultTenant || c.ID == "" {
							fail(fmt.Errorf("reader %d: listed call %+v", r, c))
							return
						}
					}
				case 1:
					if _, err := db.LiveCalls(ctx); err != nil {
						fail(err)
						return
					}
				case 2:
					c, err := db.Call(ctx, store.DefaultTenant, "call-0")
					if err != nil && !errors.Is(err, store.ErrNotFound) {
						fail(err)
						return
					}
					if err == nil && c.ID != "call-0" {
						fail(fmt.Errorf("reader %d: Call(call-0) returned %s", r, c.ID))
						return
					}
				}
			}
		}()
	}

	cs := make([]*call.Call, nCalls)
	for i := range cs {
		cs[i] = storetest.NewCall(store.DefaultTenant, fmt.Sprintf("call-%d", i), storetest.Base.Add(time.Duration(i)*time.Second), "101")
	}
	for b := 0; b < batches && ctx.Err() == nil; b++ {
		var evs []*call.Event
		for i := range perBatch {
			c := cs[(b+i)%nCalls]
			c.DTMF = fmt.Sprintf("%d", b)
			c.LastSeen = storetest.Base.Add(time.Duration(b) * time.Second)
			evs = append(evs, storetest.NewEvent(t, call.EventDTMF, c, c.LastSeen))
		}
		if err := db.Commit(ctx, &store.Batch{Calls: storetest.Rows(t, cs...), Events: evs}); err != nil {
			fail(err)
			break
		}
	}
	close(done)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	if n, _ := db.LastSeq(t.Context()); !t.Failed() && n != batches*perBatch {
		t.Fatalf("LastSeq = %d, want %d", n, batches*perBatch)
	}
}

// TestCommitFailureKeepsSeq: a batch that fails leaves nothing behind and does not
// use up seqs.
func TestCommitFailureKeepsSeq(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "callbridge.db"), sqlite.Options{})
	c := storetest.NewCall(store.DefaultTenant, "call-1", storetest.Base, "101")
	commit(t, db, []*call.Call{c}, storetest.NewEvent(t, call.EventRinging, c, storetest.Base))

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	e := storetest.NewEvent(t, call.EventDTMF, c, storetest.Base)
	if err := db.Commit(ctx, &store.Batch{Calls: storetest.Rows(t, c), Events: []*call.Event{e}}); err == nil {
		t.Fatal("Commit with a cancelled context succeeded")
	}
	if e.Seq != 0 {
		t.Fatalf("a failed commit set seq %d", e.Seq)
	}
	e2 := storetest.NewEvent(t, call.EventDTMF, c, storetest.Base)
	commit(t, db, []*call.Call{c}, e2)
	if e2.Seq != 2 {
		t.Fatalf("seq after a failed commit = %d, want 2", e2.Seq)
	}
	evs, err := db.Events(t.Context(), store.EventFilter{})
	if err != nil || len(evs) != 2 {
		t.Fatalf("Events = %d, %v; want 2", len(evs), err)
	}
}
