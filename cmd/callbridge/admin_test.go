package main

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"callbridge/internal/auth"
	"callbridge/internal/store"
	"callbridge/internal/store/sqlite"
)

func cli(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), err
}

func authenticates(t *testing.T, db, key string) (auth.Principal, error) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), db, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	return auth.NewAuthenticator(st, -1).Authenticate(context.Background(), key)
}

func TestKeysAndTenantsCommands(t *testing.T) {
	db := filepath.Join(t.TempDir(), "cb.db")
	must := func(args ...string) string {
		t.Helper()
		out, errOut, err := cli(t, append(args, "--db", db)...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, errOut)
		}
		return out
	}

	key := strings.TrimSpace(must("keys", "add", "crm", "--scope", "integration"))
	if !strings.HasPrefix(key, "cb_") {
		t.Fatalf("keys add printed %q", key)
	}
	if p, err := authenticates(t, db, key); err != nil || p.ClientID != "crm" || p.Scope != store.ScopeIntegration {
		t.Fatalf("new key: %+v %v", p, err)
	}
	list := must("keys", "list")
	if !strings.Contains(list, "crm") || strings.Contains(list, key) {
		t.Fatalf("keys list shows the client and never the key:\n%s", list)
	}

	t.Run("one key per client id", func(t *testing.T) {
		if _, _, err := cli(t, "keys", "add", "crm", "--db", db); !errors.Is(err, store.ErrExists) {
			t.Fatalf("second add: %v", err)
		}
	})
	t.Run("replace rotates", func(t *testing.T) {
		nk := strings.TrimSpace(must("keys", "replace", "crm"))
		if nk == key {
			t.Fatal("replace printed the same key")
		}
		if _, err := authenticates(t, db, key); !errors.Is(err, auth.ErrUnauthorized) {
			t.Fatalf("old key after replace: %v", err)
		}
		if _, err := authenticates(t, db, nk); err != nil {
			t.Fatalf("new key: %v", err)
		}
		key = nk
	})
	t.Run("user keys need a user", func(t *testing.T) {
		if _, _, err := cli(t, "keys", "add", "alice", "--scope", "user", "--db", db); err == nil {
			t.Fatal("user key without --user accepted")
		}
		// Flags may come before or after the client id.
		k := strings.TrimSpace(must("keys", "add", "--scope", "user", "--user", "alice@crm", "alice"))
		if p, err := authenticates(t, db, k); err != nil || p.CRMUser != "alice@crm" || p.Scope != store.ScopeUser {
			t.Fatalf("user key: %+v %v", p, err)
		}
	})
	t.Run("bad scope", func(t *testing.T) {
		if _, _, err := cli(t, "keys", "add", "x", "--scope", "root", "--db", db); err == nil {
			t.Fatal("scope root accepted")
		}
	})
	t.Run("tenants", func(t *testing.T) {
		must("tenants", "add", "acme")
		if _, _, err := cli(t, "tenants", "add", "acme", "--db", db); !errors.Is(err, store.ErrExists) {
			t.Fatalf("duplicate tenant: %v", err)
		}
		if out := must("tenants", "list"); !strings.Contains(out, "acme") || !strings.Contains(out, "default") {
			t.Fatalf("tenants list:\n%s", out)
		}
		// The same client id in another tenant is another integration.
		k := strings.TrimSpace(must("keys", "add", "crm", "--tenant", "acme"))
		if p, err := authenticates(t, db, k); err != nil || p.Tenant != "acme" {
			t.Fatalf("acme key: %+v %v", p, err)
		}
		if _, _, err := cli(t, "keys", "add", "crm", "--tenant", "nobody", "--db", db); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("key in unknown tenant: %v", err)
		}
		must("tenants", "remove", "acme")
		if _, err := authenticates(t, db, k); !errors.Is(err, auth.ErrUnauthorized) {
			t.Fatalf("key of a removed tenant: %v", err)
		}
		if _, _, err := cli(t, "tenants", "remove", "default", "--db", db); err == nil {
			t.Fatal("removed the default tenant")
		}
	})
	t.Run("remove", func(t *testing.T) {
		must("keys", "remove", "crm")
		if _, err := authenticates(t, db, key); !errors.Is(err, auth.ErrUnauthorized) {
			t.Fatalf("removed key: %v", err)
		}
		if _, _, err := cli(t, "keys", "remove", "crm", "--db", db); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second remove: %v", err)
		}
	})
	t.Run("database from the environment", func(t *testing.T) {
		envDB := filepath.Join(t.TempDir(), "env.db")
		t.Setenv("CALLBRIDGE_DB", envDB)
		if _, _, err := cli(t, "keys", "add", "envclient"); err != nil {
			t.Fatal(err)
		}
		out, _, err := cli(t, "keys", "list")
		if err != nil || !strings.Contains(out, "envclient") {
			t.Fatalf("CALLBRIDGE_DB not used: %v\n%s", err, out)
		}
	})
	t.Run("usage errors", func(t *testing.T) {
		for _, args := range [][]string{{"keys"}, {"keys", "frobnicate", "x"}, {"tenants"}, {"nonsense"}, {"keys", "add"}} {
			if _, _, err := cli(t, append(args, "--db", db)...); err == nil {
				t.Errorf("%v accepted", args)
			}
		}
	})
	if out, _, err := cli(t, "version"); err != nil || !strings.HasPrefix(out, "callbridge ") {
		t.Fatalf("version: %q %v", out, err)
	}
}
