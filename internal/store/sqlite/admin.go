package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"callbridge/internal/store"
)

// AddTenant creates a tenant.
func (db *DB) AddTenant(ctx context.Context, name string) error {
	if name == "" {
		return fmt.Errorf("sqlite: add tenant: %w: empty name", store.ErrInvalid)
	}
	_, err := db.w.ExecContext(ctx, `INSERT INTO tenants (name, created_at) VALUES (?, ?)`, name, time.Now().UnixMicro())
	if err != nil {
		if strings.Contains(err.Error(), "constraint failed") {
			return fmt.Errorf("sqlite: add tenant %q: %w", name, store.ErrExists)
		}
		return fmt.Errorf("sqlite: add tenant: %w", err)
	}
	return nil
}

// Tenants lists tenants, the default one first.
func (db *DB) Tenants(ctx context.Context) ([]store.Tenant, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT name, created_at FROM tenants ORDER BY name <> 'default', name`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: tenants: %w", err)
	}
	defer rows.Close()
	var out []store.Tenant
	for rows.Next() {
		var t store.Tenant
		var at int64
		if err := rows.Scan(&t.Name, &at); err != nil {
			return nil, fmt.Errorf("sqlite: tenants: %w", err)
		}
		t.CreatedAt = fromMicros(at)
		out = append(out, t)
	}
	return out, rows.Err()
}

// RemoveTenant removes a tenant and everything that belongs to it, except its call
// history and events, which stay for the record (they are unreachable without a key).
func (db *DB) RemoveTenant(ctx context.Context, name string) error {
	if name == store.DefaultTenant || name == "" {
		return fmt.Errorf("sqlite: remove tenant: %w: the default tenant cannot be removed", store.ErrInvalid)
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: remove tenant: %w", err)
	}
	defer tx.Rollback()
	// Children first: integrations reference the tenant (foreign_keys is on).
	for _, table := range []string{"integrations", "extensions", "mappings", "webhooks", "deliveries"} {
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE tenant = ?`, name); err != nil {
			return fmt.Errorf("sqlite: remove tenant: %w", err)
		}
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM tenants WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("sqlite: remove tenant: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("sqlite: remove tenant %q: %w", name, store.ErrNotFound)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: remove tenant: %w", err)
	}
	return nil
}

func (db *DB) tenantExists(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, name string) error {
	var n int
	if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM tenants WHERE name = ?`, name).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("tenant %q: %w", name, store.ErrNotFound)
	}
	return nil
}

// AddIntegration adds a client id with its key hash; a client id is unique per tenant.
func (db *DB) AddIntegration(ctx context.Context, in store.Integration) error {
	if in.ClientID == "" || len(in.KeyHash) == 0 || !in.Scope.Valid() {
		return fmt.Errorf("sqlite: add integration: %w", store.ErrInvalid)
	}
	if err := db.tenantExists(ctx, db.w, in.Tenant); err != nil {
		return fmt.Errorf("sqlite: add integration: %w", err)
	}
	if in.CreatedAt.IsZero() {
		in.CreatedAt = time.Now()
	}
	_, err := db.w.ExecContext(ctx, `INSERT INTO integrations (tenant, client_id, scope, crm_user, key_hash, key_prefix, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		in.Tenant, in.ClientID, string(in.Scope), in.CRMUser, in.KeyHash, in.KeyPrefix, micros(in.CreatedAt))
	if err != nil {
		if strings.Contains(err.Error(), "constraint failed") {
			return fmt.Errorf("sqlite: add integration %q: %w", in.ClientID, store.ErrExists)
		}
		return fmt.Errorf("sqlite: add integration: %w", err)
	}
	return nil
}

// ReplaceIntegrationKey rotates a client's key.
func (db *DB) ReplaceIntegrationKey(ctx context.Context, tenant, clientID string, hash []byte, prefix string) error {
	res, err := db.w.ExecContext(ctx, `UPDATE integrations SET key_hash = ?, key_prefix = ?, rotated_at = ? WHERE tenant = ? AND client_id = ?`,
		hash, prefix, time.Now().UnixMicro(), tenant, clientID)
	if err != nil {
		return fmt.Errorf("sqlite: replace key: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("sqlite: replace key %q: %w", clientID, store.ErrNotFound)
	}
	return nil
}

// RemoveIntegration removes a client and its key.
func (db *DB) RemoveIntegration(ctx context.Context, tenant, clientID string) error {
	res, err := db.w.ExecContext(ctx, `DELETE FROM integrations WHERE tenant = ? AND client_id = ?`, tenant, clientID)
	if err != nil {
		return fmt.Errorf("sqlite: remove integration: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("sqlite: remove integration %q: %w", clientID, store.ErrNotFound)
	}
	return nil
}

const integrationCols = `tenant, client_id, scope, crm_user, key_hash, key_prefix, created_at, rotated_at`

func scanIntegration(sc interface{ Scan(...any) error }) (store.Integration, error) {
	var in store.Integration
	var scope string
	var created, rotated int64
	err := sc.Scan(&in.Tenant, &in.ClientID, &scope, &in.CRMUser, &in.KeyHash, &in.KeyPrefix, &created, &rotated)
	in.Scope = store.Scope(scope)
	in.CreatedAt, in.RotatedAt = fromMicros(created), fromMicros(rotated)
	return in, err
}

// Integrations lists a tenant's clients (all tenants when tenant is empty).
func (db *DB) Integrations(ctx context.Context, tenant string) ([]store.Integration, error) {
	q := `SELECT ` + integrationCols + ` FROM integrations`
	var args []any
	if tenant != "" {
		q += ` WHERE tenant = ?`
		args = append(args, tenant)
	}
	rows, err := db.r.QueryContext(ctx, q+` ORDER BY tenant, client_id`, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: integrations: %w", err)
	}
	defer rows.Close()
	var out []store.Integration
	for rows.Next() {
		in, err := scanIntegration(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: integrations: %w", err)
		}
		out = append(out, in)
	}
	return out, rows.Err()
}

// IntegrationByHash finds the client a key belongs to.
func (db *DB) IntegrationByHash(ctx context.Context, hash []byte) (store.Integration, error) {
	in, err := scanIntegration(db.r.QueryRowContext(ctx, `SELECT `+integrationCols+` FROM integrations WHERE key_hash = ?`, hash))
	if err == sql.ErrNoRows {
		return store.Integration{}, fmt.Errorf("sqlite: integration: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.Integration{}, fmt.Errorf("sqlite: integration: %w", err)
	}
	return in, nil
}

// UpsertExtensions records PBX members. A new extension takes its APIEnabled default;
// an existing one keeps the administrator's choice and only has its PBX, name and
// status refreshed.
func (db *DB) UpsertExtensions(ctx context.Context, exts []store.Extension) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: upsert extensions: %w", err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO extensions (tenant, number, pbx, name, api_enabled, status, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(tenant, number) DO UPDATE SET pbx = excluded.pbx, name = CASE WHEN excluded.name <> '' THEN excluded.name ELSE name END,
		status = CASE WHEN excluded.status <> '' THEN excluded.status ELSE status END, updated_at = excluded.updated_at`)
	if err != nil {
		return fmt.Errorf("sqlite: upsert extensions: %w", err)
	}
	defer stmt.Close()
	now := time.Now()
	for _, e := range exts {
		if e.Number == "" || e.Tenant == "" {
			return fmt.Errorf("sqlite: upsert extensions: %w: empty number or tenant", store.ErrInvalid)
		}
		at := e.UpdatedAt
		if at.IsZero() {
			at = now
		}
		if _, err := stmt.ExecContext(ctx, e.Tenant, e.Number, e.PBX, e.Name, e.APIEnabled, e.Status, micros(at)); err != nil {
			return fmt.Errorf("sqlite: upsert extensions: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: upsert extensions: %w", err)
	}
	return nil
}

// Extensions lists a tenant's extensions (all tenants when tenant is empty).
func (db *DB) Extensions(ctx context.Context, tenant string) ([]store.Extension, error) {
	q := `SELECT tenant, number, pbx, name, api_enabled, status, updated_at FROM extensions`
	var args []any
	if tenant != "" {
		q += ` WHERE tenant = ?`
		args = append(args, tenant)
	}
	rows, err := db.r.QueryContext(ctx, q+` ORDER BY tenant, length(number), number`, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: extensions: %w", err)
	}
	defer rows.Close()
	var out []store.Extension
	for rows.Next() {
		var e store.Extension
		var at int64
		if err := rows.Scan(&e.Tenant, &e.Number, &e.PBX, &e.Name, &e.APIEnabled, &e.Status, &at); err != nil {
			return nil, fmt.Errorf("sqlite: extensions: %w", err)
		}
		e.UpdatedAt = fromMicros(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

// SetExtensionAPI enables or disables API control of an extension.
func (db *DB) SetExtensionAPI(ctx context.Context, tenant, number string, enabled bool) error {
	res, err := db.w.ExecContext(ctx, `UPDATE extensions SET api_enabled = ? WHERE tenant = ? AND number = ?`, enabled, tenant, number)
	if err != nil {
		return fmt.Errorf("sqlite: set extension api: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("sqlite: extension %q: %w", number, store.ErrNotFound)
	}
	return nil
}

// AddMapping binds a CRM user to an extension.
func (db *DB) AddMapping(ctx context.Context, m store.Mapping) error {
	if m.CRMUser == "" || m.Extension == "" {
		return fmt.Errorf("sqlite: add mapping: %w: empty user or extension", store.ErrInvalid)
	}
	if err := db.tenantExists(ctx, db.w, m.Tenant); err != nil {
		return fmt.Errorf("sqlite: add mapping: %w", err)
	}
	_, err := db.w.ExecContext(ctx, `INSERT INTO mappings (tenant, crm_user, extension) VALUES (?, ?, ?)`, m.Tenant, m.CRMUser, m.Extension)
	if err != nil {
		if strings.Contains(err.Error(), "constraint failed") {
			return fmt.Errorf("sqlite: add mapping: %w", store.ErrExists)
		}
		return fmt.Errorf("sqlite: add mapping: %w", err)
	}
	return nil
}

// RemoveMapping removes one binding.
func (db *DB) RemoveMapping(ctx context.Context, m store.Mapping) error {
	res, err := db.w.ExecContext(ctx, `DELETE FROM mappings WHERE tenant = ? AND crm_user = ? AND extension = ?`, m.Tenant, m.CRMUser, m.Extension)
	if err != nil {
		return fmt.Errorf("sqlite: remove mapping: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("sqlite: remove mapping: %w", store.ErrNotFound)
	}
	return nil
}

// Mappings lists a tenant's bindings (all tenants when tenant is empty).
func (db *DB) Mappings(ctx context.Context, tenant string) ([]store.Mapping, error) {
	q := `SELECT tenant, crm_user, extension FROM mappings`
	var args []any
	if tenant != "" {
		q += ` WHERE tenant = ?`
		args = append(args, tenant)
	}
	rows, err := db.r.QueryContext(ctx, q+` ORDER BY tenant, crm_user, extension`, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: mappings: %w", err)
	}
	defer rows.Close()
	var out []store.Mapping
	for rows.Next() {
		var m store.Mapping
		if err := rows.Scan(&m.Tenant, &m.CRMUser, &m.Extension); err != nil {
			return nil, fmt.Errorf("sqlite: mappings: %w", err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// AddWebhook adds a subscription.
func (db *DB) AddWebhook(ctx context.Context, w store.Webhook) error {
	if w.ID == "" || w.URL == "" {
		return fmt.Errorf("sqlite: add webhook: %w: empty id or url", store.ErrInvalid)
	}
	if err := db.tenantExists(ctx, db.w, w.Tenant); err != nil {
		return fmt.Errorf("sqlite: add webhook: %w", err)
	}
	if w.CreatedAt.IsZero() {
		w.CreatedAt = time.Now()
	}
	_, err := db.w.ExecContext(ctx, `INSERT INTO webhooks (tenant, id, url, secret, events, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		w.Tenant, w.ID, w.URL, w.Secret, strings.Join(w.Events, listSep), micros(w.CreatedAt))
	if err != nil {
		if strings.Contains(err.Error(), "constraint failed") {
			return fmt.Errorf("sqlite: add webhook %q: %w", w.ID, store.ErrExists)
		}
		return fmt.Errorf("sqlite: add webhook: %w", err)
	}
	return nil
}

// RemoveWebhook removes a subscription and its pending deliveries.
func (db *DB) RemoveWebhook(ctx context.Context, tenant, id string) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: remove webhook: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `DELETE FROM webhooks WHERE tenant = ? AND id = ?`, tenant, id)
	if err != nil {
		return fmt.Errorf("sqlite: remove webhook: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("sqlite: remove webhook %q: %w", id, store.ErrNotFound)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM deliveries WHERE tenant = ? AND webhook_id = ? AND status = 'pending'`, tenant, id); err != nil {
		return fmt.Errorf("sqlite: remove webhook: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: remove webhook: %w", err)
	}
	return nil
}

// Webhooks lists subscriptions (all tenants when tenant is empty).
func (db *DB) Webhooks(ctx context.Context, tenant string) ([]store.Webhook, error) {
	q := `SELECT tenant, id, url, secret, events, created_at FROM webhooks`
	var args []any
	if tenant != "" {
		q += ` WHERE tenant = ?`
		args = append(args, tenant)
	}
	rows, err := db.r.QueryContext(ctx, q+` ORDER BY tenant, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: webhooks: %w", err)
	}
	defer rows.Close()
	var out []store.Webhook
	for rows.Next() {
		var w store.Webhook
		var events string
		var at int64
		if err := rows.Scan(&w.Tenant, &w.ID, &w.URL, &w.Secret, &events, &at); err != nil {
			return nil, fmt.Errorf("sqlite: webhooks: %w", err)
		}
		w.Events = splitList(events)
		w.CreatedAt = fromMicros(at)
		out = append(out, w)
	}
	return out, rows.Err()
}

// EnqueueDeliveries adds pending deliveries.
func (db *DB) EnqueueDeliveries(ctx context.Context, ds []store.Delivery) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: enqueue deliveries: %w", err)
	}
	defer tx.Rollback()
	for _, d := range ds {
		if d.Status == "" {
			d.Status = store.DeliveryPending
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO deliveries (tenant, webhook_id, seq, attempts, next_at, status, last_error) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			d.Tenant, d.WebhookID, d.Seq, d.Attempts, micros(d.NextAt), d.Status, d.LastError); err != nil {
			return fmt.Errorf("sqlite: enqueue deliveries: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: enqueue deliveries: %w", err)
	}
	return nil
}

// DueDeliveries returns pending deliveries whose time has come, oldest first.
func (db *DB) DueDeliveries(ctx context.Context, now time.Time, limit int) ([]store.Delivery, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := db.r.QueryContext(ctx, `SELECT id, tenant, webhook_id, seq, attempts, next_at, status, last_error FROM deliveries
		WHERE status = 'pending' AND next_at <= ? ORDER BY next_at, id LIMIT ?`, micros(now), limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: due deliveries: %w", err)
	}
	defer rows.Close()
	var out []store.Delivery
	for rows.Next() {
		var d store.Delivery
		var at int64
		if err := rows.Scan(&d.ID, &d.Tenant, &d.WebhookID, &d.Seq, &d.Attempts, &at, &d.Status, &d.LastError); err != nil {
			return nil, fmt.Errorf("sqlite: due deliveries: %w", err)
		}
		d.NextAt = fromMicros(at)
		out = append(out, d)
	}
	return out, rows.Err()
}

// UpdateDelivery records an attempt's outcome.
func (db *DB) UpdateDelivery(ctx context.Context, d store.Delivery) error {
	res, err := db.w.ExecContext(ctx, `UPDATE deliveries SET attempts = ?, next_at = ?, status = ?, last_error = ? WHERE id = ?`,
		d.Attempts, micros(d.NextAt), d.Status, d.LastError, d.ID)
	if err != nil {
		return fmt.Errorf("sqlite: update delivery: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("sqlite: delivery %d: %w", d.ID, store.ErrNotFound)
	}
	return nil
}
