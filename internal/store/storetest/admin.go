package storetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"callbridge/internal/call"
	"callbridge/internal/store"
)

func addTenant(t testing.TB, s store.Store, name string) {
	t.Helper()
	if err := s.AddTenant(t.Context(), name); err != nil {
		t.Fatalf("AddTenant(%q): %v", name, err)
	}
}

func tenantNames(t testing.TB, s store.Store) []string {
	t.Helper()
	ts, err := s.Tenants(t.Context())
	if err != nil {
		t.Fatalf("Tenants: %v", err)
	}
	var out []string
	for _, x := range ts {
		out = append(out, x.Name)
	}
	return out
}

// wantErr fails t unless err is target.
func wantErr(t testing.TB, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: error %v, want %v", what, err, target)
	}
}

// recent checks at is set and within a minute of now (a store's own timestamp).
func recent(t testing.TB, what string, at time.Time) {
	t.Helper()
	if d := time.Since(at); at.IsZero() || d < -time.Minute || d > time.Minute {
		t.Errorf("%s = %v, want about now", what, at)
	}
}

func testTenants(t *testing.T, s store.Store) {
	ctx := t.Context()
	if got := tenantNames(t, s); !cmp.Equal(got, []string{store.DefaultTenant}) {
		t.Fatalf("Tenants of a fresh store = %v, want [default]", got)
	}
	// Names that sort before "default" still come after it.
	for _, n := range []string{"zeta", "acme", "beta"} {
		addTenant(t, s, n)
	}
	got := tenantNames(t, s)
	if len(got) != 4 || got[0] != store.DefaultTenant {
		t.Fatalf("Tenants = %v, want default first and 4 tenants", got)
	}
	if rest := slices.Sorted(slices.Values(got[1:])); !cmp.Equal(rest, []string{"acme", "beta", "zeta"}) {
		t.Fatalf("Tenants = %v, want default, acme, beta, zeta", got)
	}
	ts, err := s.Tenants(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range ts[1:] {
		recent(t, "tenant "+x.Name+" CreatedAt", x.CreatedAt)
	}

	wantErr(t, "AddTenant(duplicate)", s.AddTenant(ctx, "acme"), store.ErrExists)
	wantErr(t, "AddTenant(default)", s.AddTenant(ctx, store.DefaultTenant), store.ErrExists)
	wantErr(t, "AddTenant(empty)", s.AddTenant(ctx, ""), store.ErrInvalid)
	wantErr(t, "RemoveTenant(default)", s.RemoveTenant(ctx, store.DefaultTenant), store.ErrInvalid)
	wantErr(t, "RemoveTenant(unknown)", s.RemoveTenant(ctx, "nobody"), store.ErrNotFound)

	if err := s.RemoveTenant(ctx, "beta"); err != nil {
		t.Fatalf("RemoveTenant(beta): %v", err)
	}
	wantErr(t, "RemoveTenant(beta again)", s.RemoveTenant(ctx, "beta"), store.ErrNotFound)
	got = tenantNames(t, s)
	if len(got) != 3 || got[0] != store.DefaultTenant || slices.Contains(got, "beta") {
		t.Fatalf("Tenants after removing beta = %v", got)
	}
	// A removed name can be used again.
	addTenant(t, s, "beta")
}

// testRemoveTenantWithData removes a tenant that has integrations, extensions,
// mappings, webhooks and deliveries: all of it goes, the other tenants' stays, and the
// call history stays for the record.
func testRemoveTenantWithData(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, tenant := range []string{"acme", "beta"} {
		addTenant(t, s, tenant)
		if err := s.AddIntegration(ctx, store.Integration{Tenant: tenant, ClientID: "crm", Scope: store.ScopeAdmin, KeyHash: []byte("hash-" + tenant), KeyPrefix: "cb_" + tenant[:2]}); err != nil {
			t.Fatalf("AddIntegration(%s): %v", tenant, err)
		}
		if err := s.UpsertExtensions(ctx, []store.Extension{{Tenant: tenant, PBX: "pbx-1", Number: "101"}}); err != nil {
			t.Fatalf("UpsertExtensions(%s): %v", tenant, err)
		}
		if err := s.AddMapping(ctx, store.Mapping{Tenant: tenant, CRMUser: "u1", Extension: "101"}); err != nil {
			t.Fatalf("AddMapping(%s): %v", tenant, err)
		}
		if err := s.AddWebhook(ctx, store.Webhook{Tenant: tenant, ID: "wh", URL: "https://crm.example/hook"}); err != nil {
			t.Fatalf("AddWebhook(%s): %v", tenant, err)
		}
		if err := s.EnqueueDeliveries(ctx, []store.Delivery{{Tenant: tenant, WebhookID: "wh", Seq: 1, NextAt: Base}}); err != nil {
			t.Fatalf("EnqueueDeliveries(%s): %v", tenant, err)
		}
	}
	c := NewCall("acme", "acme-call", Base, "101")
	commit(t, s, []*call.Call{c}, NewEvent(t, call.EventRinging, c, Base))

	if err := s.RemoveTenant(ctx, "acme"); err != nil {
		t.Fatalf("RemoveTenant(acme) with integrations, extensions, mappings, webhooks and deliveries: %v", err)
	}
	if slices.Contains(tenantNames(t, s), "acme") {
		t.Fatal("acme still listed after RemoveTenant")
	}
	if _, err := s.IntegrationByHash(ctx, []byte("hash-acme")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("IntegrationByHash(acme's key) after RemoveTenant: %v, want ErrNotFound", err)
	}
	ins, err := s.Integrations(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(ins) != 1 || ins[0].Tenant != "beta" {
		t.Errorf("Integrations after RemoveTenant(acme) = %+v, want beta's only", ins)
	}
	exts, err := s.Extensions(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(exts) != 1 || exts[0].Tenant != "beta" {
		t.Errorf("Extensions after RemoveTenant(acme) = %+v, want beta's only", exts)
	}
	ms, err := s.Mappings(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || ms[0].Tenant != "beta" {
		t.Errorf("Mappings after RemoveTenant(acme) = %+v, want beta's only", ms)
	}
	whs, err := s.Webhooks(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(whs) != 1 || whs[0].Tenant != "beta" {
		t.Errorf("Webhooks after RemoveTenant(acme) = %+v, want beta's only", whs)
	}
	ds, err := s.DueDeliveries(ctx, Base.Add(time.Hour), 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 || ds[0].Tenant != "beta" {
		t.Errorf("DueDeliveries after RemoveTenant(acme) = %+v, want beta's only", ds)
	}
	// History stays.
	wantCall(t, s, c)
	if evs := events(t, s, store.EventFilter{Tenant: "acme"}); len(evs) != 1 {
		t.Errorf("acme's events after RemoveTenant: %d, want 1 (history stays)", len(evs))
	}
	// The tenant can be created again, empty.
	addTenant(t, s, "acme")
	if ins, err := s.Integrations(ctx, "acme"); err != nil || len(ins) != 0 {
		t.Errorf("Integrations of re-created acme = %+v, %v; want none", ins, err)
	}
}

func integrations(t testing.TB, s store.Store, tenant string) []store.Integration {
	t.Helper()
	ins, err := s.Integrations(t.Context(), tenant)
	if err != nil {
		t.Fatalf("Integrations(%q): %v", tenant, err)
	}
	slices.SortFunc(ins, func(a, b store.Integration) int {
		return slices.Compare([]string{a.Tenant, a.ClientID}, []string{b.Tenant, b.ClientID})
	})
	return ins
}

func testIntegrations(t *testing.T, s store.Store) {
	ctx := t.Context()
	addTenant(t, s, "acme")
	created := Base.Add(-24 * time.Hour)
	admin := store.Integration{Tenant: store.DefaultTenant, ClientID: "crm-admin", Scope: store.ScopeAdmin, KeyHash: []byte{1, 2, 3, 0, 255}, KeyPrefix: "cb_a1", CreatedAt: created}
	user := store.Integration{Tenant: store.DefaultTenant, ClientID: "crm-user", Scope: store.ScopeUser, CRMUser: "ivanov", KeyHash: []byte("user-hash"), KeyPrefix: "cb_u1", CreatedAt: created}
	acme := store.Integration{Tenant: "acme", ClientID: "crm-admin", Scope: store.ScopeIntegration, KeyHash: []byte("acme-hash"), KeyPrefix: "cb_x1"}
	for _, in := range []store.Integration{admin, user} {
		if err := s.AddIntegration(ctx, in); err != nil {
			t.Fatalf("AddIntegration(%s/%s): %v", in.Tenant, in.ClientID, err)
		}
	}
	dup := admin
	dup.KeyHash = []byte("another-hash")
	wantErr(t, "AddIntegration(duplicate client id)", s.AddIntegration(ctx, dup), store.ErrExists)
	// The same client id in another tenant is a different integration.
	if err := s.AddIntegration(ctx, acme); err != nil {
		t.Fatalf("AddIntegration(acme/crm-admin): %v", err)
	}
	sameKey := store.Integration{Tenant: "acme", ClientID: "other", Scope: store.ScopeAdmin, KeyHash: admin.KeyHash, KeyPrefix: "cb_a1"}
	wantErr(t, "AddIntegration(a key hash in use)", s.AddIntegration(ctx, sameKey), store.ErrExists)
	nobody := store.Integration{Tenant: "nobody", ClientID: "crm", Scope: store.ScopeAdmin, KeyHash: []byte("nobody-hash")}
	wantErr(t, "AddIntegration(unknown tenant)", s.AddIntegration(ctx, nobody), store.ErrNotFound)
	wantErr(t, "AddIntegration(no client id)", s.AddIntegration(ctx, store.Integration{Tenant: store.DefaultTenant, Scope: store.ScopeAdmin, KeyHash: []byte("x")}), store.ErrInvalid)
	wantErr(t, "AddIntegration(no key)", s.AddIntegration(ctx, store.Integration{Tenant: store.DefaultTenant, ClientID: "x", Scope: store.ScopeAdmin}), store.ErrInvalid)
	wantErr(t, "AddIntegration(bad scope)", s.AddIntegration(ctx, store.Integration{Tenant: store.DefaultTenant, ClientID: "x", Scope: "root", KeyHash: []byte("x")}), store.ErrInvalid)

	ignoreCreated := cmpopts.IgnoreFields(store.Integration{}, "CreatedAt")
	list := integrations(t, s, store.DefaultTenant)
	if d := cmp.Diff([]store.Integration{admin, user}, list, cmpopts.EquateEmpty()); d != "" {
		t.Errorf("Integrations(default) (-want +got):\n%s", d)
	}
	list = integrations(t, s, "acme")
	if d := cmp.Diff([]store.Integration{acme}, list, cmpopts.EquateEmpty(), ignoreCreated); d != "" {
		t.Errorf("Integrations(acme) (-want +got):\n%s", d)
	} else {
		recent(t, "acme integration CreatedAt (zero in the request)", list[0].CreatedAt)
	}
	list = integrations(t, s, "")
	if len(list) != 3 {
		t.Errorf("Integrations(all tenants) = %d, want 3", len(list))
	}

	for _, want := range []store.Integration{admin, user, acme} {
		got, err := s.IntegrationByHash(ctx, want.KeyHash)
		if err != nil {
			t.Errorf("IntegrationByHash(%s/%s): %v", want.Tenant, want.ClientID, err)
			continue
		}
		if d := cmp.Diff(want, got, cmpopts.EquateEmpty(), ignoreCreated); d != "" {
			t.Errorf("IntegrationByHash(%s/%s) (-want +got):\n%s", want.Tenant, want.ClientID, d)
		}
	}
	_, err := s.IntegrationByHash(ctx, []byte("unknown"))
	wantErr(t, "IntegrationByHash(unknown)", err, store.ErrNotFound)

	if err := s.RemoveIntegration(ctx, store.DefaultTenant, "crm-admin"); err != nil {
		t.Fatalf("RemoveIntegration: %v", err)
	}
	_, err = s.IntegrationByHash(ctx, admin.KeyHash)
	wantErr(t, "IntegrationByHash(removed)", err, store.ErrNotFound)
	wantErr(t, "RemoveIntegration(again)", s.RemoveIntegration(ctx, store.DefaultTenant, "crm-admin"), store.ErrNotFound)
	wantErr(t, "RemoveIntegration(unknown tenant)", s.RemoveIntegration(ctx, "nobody", "crm-user"), store.ErrNotFound)
	// acme's client of the same id is untouched.
	if _, err := s.IntegrationByHash(ctx, acme.KeyHash); err != nil {
		t.Errorf("IntegrationByHash(acme) after removing default's crm-admin: %v", err)
	}
	// The client id can be added again.
	if err := s.AddIntegration(ctx, admin); err != nil {
		t.Errorf("AddIntegration after remove: %v", err)
	}
}

func testIntegrationKeyRotation(t *testing.T, s store.Store) {
	ctx := t.Context()
	addTenant(t, s, "acme")
	in := store.Integration{Tenant: "acme", ClientID: "crm", Scope: store.ScopeUser, CRMUser: "petrov", KeyHash: []byte("old-hash"), KeyPrefix: "cb_old", CreatedAt: Base}
	if err := s.AddIntegration(ctx, in); err != nil {
		t.Fatal(err)
	}
	if got, err := s.IntegrationByHash(ctx, in.KeyHash); err != nil || !got.RotatedAt.IsZero() {
		t.Fatalf("IntegrationByHash before rotation: %+v, %v; want RotatedAt zero", got, err)
	}
	if err := s.ReplaceIntegrationKey(ctx, "acme", "crm", []byte("new-hash"), "cb_new"); err != nil {
		t.Fatalf("ReplaceIntegrationKey: %v", err)
	}
	_, err := s.IntegrationByHash(ctx, []byte("old-hash"))
	wantErr(t, "IntegrationByHash(old key)", err, store.ErrNotFound)
	got, err := s.IntegrationByHash(ctx, []byte("new-hash"))
	if err != nil {
		t.Fatalf("IntegrationByHash(new key): %v", err)
	}
	want := in
	want.KeyHash, want.KeyPrefix = []byte("new-hash"), "cb_new"
	if d := cmp.Diff(want, got, cmpopts.IgnoreFields(store.Integration{}, "RotatedAt")); d != "" {
		t.Errorf("rotated integration (-want +got):\n%s", d)
	}
	recent(t, "RotatedAt", got.RotatedAt)
	wantErr(t, "ReplaceIntegrationKey(unknown client)", s.ReplaceIntegrationKey(ctx, "acme", "nobody", []byte("x"), "x"), store.ErrNotFound)
	wantErr(t, "ReplaceIntegrationKey(wrong tenant)", s.ReplaceIntegrationKey(ctx, store.DefaultTenant, "crm", []byte("y"), "y"), store.ErrNotFound)
	if _, err := s.IntegrationByHash(ctx, []byte("new-hash")); err != nil {
		t.Errorf("IntegrationByHash(new key) after failed rotations: %v", err)
	}
}

func extensions(t testing.TB, s store.Store, tenant string) []store.Extension {
	t.Helper()
	exts, err := s.Extensions(t.Context(), tenant)
	if err != nil {
		t.Fatalf("Extensions(%q): %v", tenant, err)
	}
	slices.SortFunc(exts, func(a, b store.Extension) int {
		return slices.Compare([]string{a.Tenant, a.Number}, []string{b.Tenant, b.Number})
	})
	return exts
}

func testExtensions(t *testing.T, s store.Store) {
	ctx := t.Context()
	addTenant(t, s, "acme")
	at := Base
	in := []store.Extension{
		{Tenant: store.DefaultTenant, PBX: "pbx-1", Number: "101", Name: "Reception", APIEnabled: true, Status: "available", UpdatedAt: at},
		{Tenant: store.DefaultTenant, PBX: "pbx-1", Number: "102", Name: "Sales", APIEnabled: false, Status: "offline", UpdatedAt: at},
		{Tenant: "acme", PBX: "pbx-2", Number: "101", Name: "Acme desk", APIEnabled: true, UpdatedAt: at},
	}
	if err := s.UpsertExtensions(ctx, in); err != nil {
		t.Fatalf("UpsertExtensions: %v", err)
	}
	if d := cmp.Diff(in[:2], extensions(t, s, store.DefaultTenant)); d != "" {
		t.Errorf("Extensions(default) (-want +got):\n%s", d)
	}
	if d := cmp.Diff(in[2:], extensions(t, s, "acme")); d != "" {
		t.Errorf("Extensions(acme) (-want +got):\n%s", d)
	}
	if got := extensions(t, s, ""); len(got) != 3 {
		t.Errorf("Extensions(all tenants) = %d, want 3", len(got))
	}

	// The administrator turns API control off; the PBX's next report keeps that.
	if err := s.SetExtensionAPI(ctx, store.DefaultTenant, "101", false); err != nil {
		t.Fatalf("SetExtensionAPI: %v", err)
	}
	at2 := Base.Add(time.Hour)
	if err := s.UpsertExtensions(ctx, []store.Extension{
		{Tenant: store.DefaultTenant, PBX: "pbx-1b", Number: "101", Name: "Front desk", APIEnabled: true, Status: "busy", UpdatedAt: at2},
		{Tenant: store.DefaultTenant, PBX: "pbx-1", Number: "102", Name: "Sales", APIEnabled: true, Status: "available", UpdatedAt: at2},
		{Tenant: store.DefaultTenant, PBX: "pbx-1", Number: "1001", Name: "New", APIEnabled: true, UpdatedAt: at2},
	}); err != nil {
		t.Fatalf("UpsertExtensions: %v", err)
	}
	want := []store.Extension{
		{Tenant: store.DefaultTenant, PBX: "pbx-1", Number: "1001", Name: "New", APIEnabled: true, UpdatedAt: at2},
		{Tenant: store.DefaultTenant, PBX: "pbx-1b", Number: "101", Name: "Front desk", APIEnabled: false, Status: "busy", UpdatedAt: at2},
		{Tenant: store.DefaultTenant, PBX: "pbx-1", Number: "102", Name: "Sales", APIEnabled: false, Status: "available", UpdatedAt: at2},
	}
	if d := cmp.Diff(want, extensions(t, s, store.DefaultTenant)); d != "" {
		t.Errorf("Extensions after upsert (-want +got):\n%s", d)
	}
	// And turns it back on.
	if err := s.SetExtensionAPI(ctx, store.DefaultTenant, "102", true); err != nil {
		t.Fatalf("SetExtensionAPI: %v", err)
	}
	if err := s.UpsertExtensions(ctx, []store.Extension{{Tenant: store.DefaultTenant, PBX: "pbx-1", Number: "102", Status: "offline"}}); err != nil {
		t.Fatalf("UpsertExtensions: %v", err)
	}
	if got := extensions(t, s, store.DefaultTenant); !got[2].APIEnabled {
		t.Errorf("102 after SetExtensionAPI(true) and an upsert with APIEnabled false: %+v, want enabled", got[2])
	}
	// Acme's 101 is a different extension.
	if got := extensions(t, s, "acme"); len(got) != 1 || !got[0].APIEnabled || got[0].Name != "Acme desk" {
		t.Errorf("Extensions(acme) = %+v, want its 101 untouched", got)
	}
	wantErr(t, "SetExtensionAPI(unknown)", s.SetExtensionAPI(ctx, store.DefaultTenant, "999", true), store.ErrNotFound)
	wantErr(t, "SetExtensionAPI(other tenant's number)", s.SetExtensionAPI(ctx, "acme", "102", true), store.ErrNotFound)
	wantErr(t, "UpsertExtensions(no number)", s.UpsertExtensions(ctx, []store.Extension{{Tenant: store.DefaultTenant, PBX: "pbx-1"}}), store.ErrInvalid)
	if err := s.UpsertExtensions(ctx, nil); err != nil {
		t.Errorf("UpsertExtensions(nil): %v", err)
	}
}

func mappings(t testing.TB, s store.Store, tenant string) []store.Mapping {
	t.Helper()
	ms, err := s.Mappings(t.Context(), tenant)
	if err != nil {
		t.Fatalf("Mappings(%q): %v", tenant, err)
	}
	slices.SortFunc(ms, func(a, b store.Mapping) int {
		return slices.Compare([]string{a.Tenant, a.CRMUser, a.Extension}, []string{b.Tenant, b.CRMUser, b.Extension})
	})
	return ms
}

func testMappings(t *testing.T, s store.Store) {
	ctx := t.Context()
	addTenant(t, s, "acme")
	ms := []store.Mapping{
		{Tenant: store.DefaultTenant, CRMUser: "ivanov", Extension: "101"},
		{Tenant: store.DefaultTenant, CRMUser: "ivanov", Extension: "102"},
		{Tenant: store.DefaultTenant, CRMUser: "petrov", Extension: "101"},
		{Tenant: "acme", CRMUser: "ivanov", Extension: "101"},
	}
	for _, m := range ms {
		if err := s.AddMapping(ctx, m); err != nil {
			t.Fatalf("AddMapping(%+v): %v", m, err)
		}
	}
	wantErr(t, "AddMapping(duplicate)", s.AddMapping(ctx, ms[1]), store.ErrExists)
	wantErr(t, "AddMapping(unknown tenant)", s.AddMapping(ctx, store.Mapping{Tenant: "nobody", CRMUser: "u", Extension: "1"}), store.ErrNotFound)
	wantErr(t, "AddMapping(no user)", s.AddMapping(ctx, store.Mapping{Tenant: store.DefaultTenant, Extension: "1"}), store.ErrInvalid)
	wantErr(t, "AddMapping(no extension)", s.AddMapping(ctx, store.Mapping{Tenant: store.DefaultTenant, CRMUser: "u"}), store.ErrInvalid)
	if d := cmp.Diff(ms[:3], mappings(t, s, store.DefaultTenant)); d != "" {
		t.Errorf("Mappings(default) (-want +got):\n%s", d)
	}
	if d := cmp.Diff(ms[3:], mappings(t, s, "acme")); d != "" {
		t.Errorf("Mappings(acme) (-want +got):\n%s", d)
	}
	if got := mappings(t, s, ""); len(got) != 4 {
		t.Errorf("Mappings(all tenants) = %d, want 4", len(got))
	}
	if err := s.RemoveMapping(ctx, ms[0]); err != nil {
		t.Fatalf("RemoveMapping: %v", err)
	}
	wantErr(t, "RemoveMapping(again)", s.RemoveMapping(ctx, ms[0]), store.ErrNotFound)
	if d := cmp.Diff(ms[1:3], mappings(t, s, store.DefaultTenant)); d != "" {
		t.Errorf("Mappings(default) after remove (-want +got):\n%s", d)
	}
	if d := cmp.Diff(ms[3:], mappings(t, s, "acme")); d != "" {
		t.Errorf("Mappings(acme) after removing default's (-want +got):\n%s", d)
	}
	if err := s.AddMapping(ctx, ms[0]); err != nil {
		t.Errorf("AddMapping after remove: %v", err)
	}
}

func webhooks(t testing.TB, s store.Store, tenant string) []store.Webhook {
	t.Helper()
	ws, err := s.Webhooks(t.Context(), tenant)
	if err != nil {
		t.Fatalf("Webhooks(%q): %v", tenant, err)
	}
	slices.SortFunc(ws, func(a, b store.Webhook) int {
		return slices.Compare([]string{a.Tenant, a.ID}, []string{b.Tenant, b.ID})
	})
	return ws
}

func testWebhooks(t *testing.T, s store.Store) {
	ctx := t.Context()
	addTenant(t, s, "acme")
	ws := []store.Webhook{
		{Tenant: store.DefaultTenant, ID: "wh-1", URL: "https://crm.example/hook?a=1&b=2", Secret: "s3cr3t", Events: []string{string(call.EventRinging), string(call.EventEnded)}, CreatedAt: Base},
		{Tenant: store.DefaultTenant, ID: "wh-2", URL: "https://other.example/", Secret: "", Events: []string{"*"}, CreatedAt: Base},
		{Tenant: "acme", ID: "wh-1", URL: "https://acme.example/hook", Secret: "x", Events: []string{string(call.EventRecorded)}, CreatedAt: Base},
	}
	for _, w := range ws {
		if err := s.AddWebhook(ctx, w); err != nil {
			t.Fatalf("AddWebhook(%s/%s): %v", w.Tenant, w.ID, err)
		}
	}
	wantErr(t, "AddWebhook(duplicate)", s.AddWebhook(ctx, ws[0]), store.ErrExists)
	wantErr(t, "AddWebhook(unknown tenant)", s.AddWebhook(ctx, store.Webhook{Tenant: "nobody", ID: "x", URL: "https://x.example/"}), store.ErrNotFound)
	wantErr(t, "AddWebhook(no url)", s.AddWebhook(ctx, store.Webhook{Tenant: store.DefaultTenant, ID: "x"}), store.ErrInvalid)
	wantErr(t, "AddWebhook(no id)", s.AddWebhook(ctx, store.Webhook{Tenant: store.DefaultTenant, URL: "https://x.example/"}), store.ErrInvalid)
	if d := cmp.Diff(ws[:2], webhooks(t, s, store.DefaultTenant)); d != "" {
		t.Errorf("Webhooks(default) (-want +got):\n%s", d)
	}
	if d := cmp.Diff(ws[2:], webhooks(t, s, "acme")); d != "" {
		t.Errorf("Webhooks(acme) (-want +got):\n%s", d)
	}
	if got := webhooks(t, s, ""); len(got) != 3 {
		t.Errorf("Webhooks(all tenants) = %d, want 3", len(got))
	}

	// Removing a webhook drops its pending deliveries, not other webhooks'.
	if err := s.EnqueueDeliveries(ctx, []store.Delivery{
		{Tenant: store.DefaultTenant, WebhookID: "wh-1", Seq: 1, NextAt: Base},
		{Tenant: store.DefaultTenant, WebhookID: "wh-2", Seq: 1, NextAt: Base},
		{Tenant: "acme", WebhookID: "wh-1", Seq: 2, NextAt: Base},
	}); err != nil {
		t.Fatalf("EnqueueDeliveries: %v", err)
	}
	if err := s.RemoveWebhook(ctx, store.DefaultTenant, "wh-1"); err != nil {
		t.Fatalf("RemoveWebhook: %v", err)
	}
	wantErr(t, "RemoveWebhook(again)", s.RemoveWebhook(ctx, store.DefaultTenant, "wh-1"), store.ErrNotFound)
	wantErr(t, "RemoveWebhook(unknown tenant)", s.RemoveWebhook(ctx, "nobody", "wh-2"), store.ErrNotFound)
	if d := cmp.Diff(ws[1:2], webhooks(t, s, store.DefaultTenant)); d != "" {
		t.Errorf("Webhooks(default) after remove (-want +got):\n%s", d)
	}
	if d := cmp.Diff(ws[2:], webhooks(t, s, "acme")); d != "" {
		t.Errorf("Webhooks(acme) after removing default's wh-1 (-want +got):\n%s", d)
	}
	ds, err := s.DueDeliveries(ctx, Base, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range ds {
		got = append(got, d.Tenant+"/"+d.WebhookID)
	}
	slices.Sort(got)
	if !cmp.Equal(got, []string{"acme/wh-1", "default/wh-2"}) {
		t.Errorf("due deliveries after RemoveWebhook = %v, want [acme/wh-1 default/wh-2]", got)
	}
}

func due(t testing.TB, s store.Store, now time.Time, limit int) []store.Delivery {
	t.Helper()
	ds, err := s.DueDeliveries(t.Context(), now, limit)
	if err != nil {
		t.Fatalf("DueDeliveries: %v", err)
	}
	return ds
}

func deliverySeqs(ds []store.Delivery) []int64 {
	out := make([]int64, len(ds))
	for i, d := range ds {
		out[i] = d.Seq
	}
	return out
}

func testDeliveries(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := Base
	if err := s.AddWebhook(ctx, store.Webhook{Tenant: store.DefaultTenant, ID: "wh", URL: "https://crm.example/hook"}); err != nil {
		t.Fatal(err)
	}
	// Seq says which delivery is which; NextAt is not in enqueue order.
	in := []store.Delivery{
		{Tenant: store.DefaultTenant, WebhookID: "wh", Seq: 1, NextAt: now.Add(-time.Minute)},
		{Tenant: store.DefaultTenant, WebhookID: "wh", Seq: 2, NextAt: now.Add(time.Minute)},
		{Tenant: store.DefaultTenant, WebhookID: "wh", Seq: 3, NextAt: now.Add(-time.Hour)},
		{Tenant: store.DefaultTenant, WebhookID: "wh", Seq: 4, NextAt: now},
		{Tenant: store.DefaultTenant, WebhookID: "wh", Seq: 5, NextAt: now.Add(-time.Minute)},
		{Tenant: store.DefaultTenant, WebhookID: "wh", Seq: 6, NextAt: now.Add(-2 * time.Hour), Status: store.DeliveryDelivered},
		{Tenant: store.DefaultTenant, WebhookID: "wh", Seq: 7, NextAt: now.Add(-2 * time.Hour), Status: store.DeliveryDead, Attempts: 10, LastError: "410 Gone"},
	}
	if err := s.EnqueueDeliveries(ctx, in); err != nil {
		t.Fatalf("EnqueueDeliveries: %v", err)
	}
	if err := s.EnqueueDeliveries(ctx, nil); err != nil {
		t.Fatalf("EnqueueDeliveries(nil): %v", err)
	}
	// Only pending ones with NextAt ≤ now, soonest first; equal times in enqueue order.
	ds := due(t, s, now, 100)
	if !cmp.Equal(deliverySeqs(ds), []int64{3, 1, 5, 4}) {
		t.Fatalf("DueDeliveries(now) seqs %v, want [3 1 5 4]", deliverySeqs(ds))
	}
	idSeen := map[int64]bool{}
	for _, d := range ds {
		if d.ID == 0 || idSeen[d.ID] {
			t.Fatalf("delivery seq %d has id %d: ids must be set and distinct", d.Seq, d.ID)
		}
		idSeen[d.ID] = true
		if d.Status != store.DeliveryPending || d.Tenant != store.DefaultTenant || d.WebhookID != "wh" || d.Attempts != 0 || d.LastError != "" {
			t.Fatalf("delivery %+v: want pending, default/wh, no attempts", d)
		}
	}
	if !ds[0].NextAt.Equal(now.Add(-time.Hour)) {
		t.Fatalf("delivery seq 3 NextAt = %v, want %v", ds[0].NextAt, now.Add(-time.Hour))
	}
	if got := due(t, s, now, 2); !cmp.Equal(deliverySeqs(got), []int64{3, 1}) {
		t.Fatalf("DueDeliveries(now, limit 2) seqs %v, want [3 1]", deliverySeqs(got))
	}
	if got := due(t, s, now.Add(-3*time.Hour), 100); len(got) != 0 {
		t.Fatalf("DueDeliveries(before everything) = %v, want none", deliverySeqs(got))
	}

	// Seq 3 is delivered; seq 1 failed and is retried later.
	d3, d1 := ds[0], ds[1]
	d3.Attempts, d3.Status = 1, store.DeliveryDelivered
	if err := s.UpdateDelivery(ctx, d3); err != nil {
		t.Fatalf("UpdateDelivery: %v", err)
	}
	d1.Attempts, d1.NextAt, d1.LastError = 1, now.Add(30*time.Second), "503 Service Unavailable"
	if err := s.UpdateDelivery(ctx, d1); err != nil {
		t.Fatalf("UpdateDelivery: %v", err)
	}
	if got := due(t, s, now, 100); !cmp.Equal(deliverySeqs(got), []int64{5, 4}) {
		t.Fatalf("DueDeliveries(now) after updates seqs %v, want [5 4]", deliverySeqs(got))
	}
	later := due(t, s, now.Add(time.Minute), 100)
	if !cmp.Equal(deliverySeqs(later), []int64{5, 4, 1, 2}) {
		t.Fatalf("DueDeliveries(now+1m) seqs %v, want [5 4 1 2]", deliverySeqs(later))
	}
	if d := cmp.Diff(d1, later[2]); d != "" {
		t.Fatalf("retried delivery (-want +got):\n%s", d)
	}
	// Dead letters leave the queue too.
	d5 := later[0]
	d5.Attempts, d5.Status, d5.LastError = 10, store.DeliveryDead, "timeout"
	if err := s.UpdateDelivery(ctx, d5); err != nil {
		t.Fatalf("UpdateDelivery: %v", err)
	}
	if got := due(t, s, now.Add(time.Minute), 100); !cmp.Equal(deliverySeqs(got), []int64{4, 1, 2}) {
		t.Fatalf("DueDeliveries after a dead letter seqs %v, want [4 1 2]", deliverySeqs(got))
	}
	wantErr(t, "UpdateDelivery(unknown id)", s.UpdateDelivery(ctx, store.Delivery{ID: 1 << 40, Status: store.DeliveryDelivered}), store.ErrNotFound)
}
