package sqlite

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"callbridge/internal/call"
	"callbridge/internal/store"
)

// Rows per multi-row INSERT: large enough to amortise statement overhead, small
// enough to stay far below SQLite's bound-parameter limit.
const chunkRows = 128

// Commit writes the batch in one transaction and assigns event seqs.
func (db *DB) Commit(ctx context.Context, b *store.Batch) error {
	if len(b.Calls) == 0 && len(b.Events) == 0 {
		return nil
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: commit: %w", err)
	}
	seq := db.lastSeq
	if err := db.writeCalls(ctx, tx, b.Calls); err != nil {
		tx.Rollback()
		return err
	}
	if err := db.writeEvents(ctx, tx, b.Events, seq); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: commit: %w", err)
	}
	for i, e := range b.Events {
		e.Seq = seq + int64(i) + 1
	}
	db.lastSeq = seq + int64(len(b.Events))
	return nil
}

func (db *DB) insertSQL(key string, head string, cols, rows int, tail string) string {
	k := key + strconv.Itoa(rows)
	if s, ok := db.inserts[k]; ok {
		return s
	}
	var sb strings.Builder
	sb.WriteString(head)
	row := "(" + strings.TrimSuffix(strings.Repeat("?,", cols), ",") + ")"
	for i := 0; i < rows; i++ {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(row)
	}
	sb.WriteString(tail)
	s := sb.String()
	db.inserts[k] = s
	return s
}

func (db *DB) writeCalls(ctx context.Context, tx *sql.Tx, calls []store.CallRow) error {
	const head = `INSERT INTO calls (id, tenant, pbx, pbx_call_id, state, direction, customer, customer_e164, disposition, started_at, data, acc) VALUES `
	const tail = ` ON CONFLICT(id) DO UPDATE SET state=excluded.state, direction=excluded.direction, customer=excluded.customer, customer_e164=excluded.customer_e164, disposition=excluded.disposition, data=excluded.data, acc=excluded.acc`
	var exts []any
	for start := 0; start < len(calls); start += chunkRows {
		end := min(start+chunkRows, len(calls))
		args := make([]any, 0, (end-start)*12)
		for _, r := range calls[start:end] {
			c := r.Call
			args = append(args, c.ID, c.Tenant, c.PBX, c.PBXCallID, string(c.State), string(c.Direction), c.Customer, c.CustomerE164, string(c.Disposition), micros(c.StartedAt), r.JSON, r.Acc)
			for _, e := range c.Extensions() {
				exts = append(exts, c.Tenant, e, micros(c.StartedAt), c.ID)
			}
		}
		if _, err := tx.ExecContext(ctx, db.insertSQL("c", head, 12, end-start, tail), args...); err != nil {
			return fmt.Errorf("sqlite: write calls: %w", err)
		}
	}
	const extHead = `INSERT OR IGNORE INTO call_extensions (tenant, extension, started_at, call_id) VALUES `
	for start := 0; start < len(exts); start += chunkRows * 4 {
		end := min(start+chunkRows*4, len(exts))
		if _, err := tx.ExecContext(ctx, db.insertSQL("x", extHead, 4, (end-start)/4, ""), exts[start:end]...); err != nil {
			return fmt.Errorf("sqlite: write call extensions: %w", err)
		}
	}
	return nil
}

func (db *DB) writeEvents(ctx context.Context, tx *sql.Tx, events []*call.Event, seq int64) error {
	const head = `INSERT INTO events (seq, tenant, type, call_id, exts, users, payload) VALUES `
	for start := 0; start < len(events); start += chunkRows {
		end := min(start+chunkRows, len(events))
		args := make([]any, 0, (end-start)*7)
		for i, e := range events[start:end] {
			if e.Raw == nil {
				if err := e.Encode(); err != nil {
					return fmt.Errorf("sqlite: encode event: %w", err)
				}
			}
			callID := eventCallID(e)
			args = append(args, seq+int64(start+i)+1, e.Tenant, string(e.Type), callID, strings.Join(e.Extensions, listSep), strings.Join(e.Users, listSep), []byte(e.Raw))
		}
		if _, err := tx.ExecContext(ctx, db.insertSQL("e", head, 7, end-start, ""), args...); err != nil {
			return fmt.Errorf("sqlite: write events: %w", err)
		}
	}
	return nil
}

// eventCallID is the id of the call e is about ("" for none).
func eventCallID(e *call.Event) string {
	if e.CallID != "" {
		return e.CallID
	}
	if e.Call != nil {
		return e.Call.ID
	}
	return ""
}

// LastSeq returns the newest committed seq.
func (db *DB) LastSeq(ctx context.Context) (int64, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.lastSeq, nil
}

// Events reads the log after f.After. The events carry Raw and the scoping fields
// (Type, Tenant, Extensions, Users); call Decode for the rest.
func (db *DB) Events(ctx context.Context, f store.EventFilter) ([]*call.Event, error) {
	if f.Limit <= 0 || f.Limit > 10000 {
		f.Limit = 10000
	}
	q := `SELECT seq, tenant, type, exts, users, payload FROM events WHERE seq > ?`
	args := []any{f.After}
	if f.Tenant != "" {
		q += ` AND tenant = ?`
		args = append(args, f.Tenant)
	}
	q += ` ORDER BY seq LIMIT ?`
	args = append(args, f.Limit)
	out, err := db.queryEvents(ctx, min(f.Limit, 1024), q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: events: %w", err)
	}
	return out, nil
}

// queryEvents runs an events query selecting seq, tenant, type, exts, users, payload.
func (db *DB) queryEvents(ctx context.Context, capacity int, q string, args ...any) ([]*call.Event, error) {
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([]*call.Event, 0, capacity)
	for rows.Next() {
		e := &call.Event{}
		var typ, exts, users string
		var payload []byte
		if err := rows.Scan(&e.Seq, &e.Tenant, &typ, &exts, &users, &payload); err != nil {
			return nil, err
		}
		e.Type = call.EventType(typ)
		e.Extensions = splitList(exts)
		e.Users = splitList(users)
		e.Raw = payload
		out = append(out, e)
	}
	return out, rows.Err()
}

// CallEvents reads one call's events, oldest first, with the same fields as Events.
func (db *DB) CallEvents(ctx context.Context, tenant, callID string, limit int) ([]*call.Event, error) {
	if limit <= 0 || limit > store.MaxCallEvents {
		limit = store.MaxCallEvents
	}
	out, err := db.queryEvents(ctx, 16, `SELECT seq, tenant, type, exts, users, payload FROM events WHERE tenant = ? AND call_id = ? ORDER BY seq LIMIT ?`,
		tenant, callID, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: call events: %w", err)
	}
	return out, nil
}

// listSep joins list columns: the ASCII unit separator, which no extension number,
// CRM user id or event name contains (a space could be in a CRM user id).
const listSep = "\x1f"

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, listSep)
}

const callCols = `tenant, data, acc`

func scanCall(sc interface{ Scan(...any) error }) (*call.Call, error) {
	var tenant string
	var data, acc []byte
	if err := sc.Scan(&tenant, &data, &acc); err != nil {
		return nil, err
	}
	c := &call.Call{}
	if err := json.Unmarshal(data, c); err != nil {
		return nil, fmt.Errorf("decode call: %w", err)
	}
	if len(acc) > 0 {
		if err := json.Unmarshal(acc, &c.Acc); err != nil {
			return nil, fmt.Errorf("decode call accounting: %w", err)
		}
	}
	c.Tenant = tenant
	return c, nil
}

// Call returns one call of a tenant.
func (db *DB) Call(ctx context.Context, tenant, id string) (*call.Call, error) {
	c, err := scanCall(db.r.QueryRowContext(ctx, `SELECT `+callCols+` FROM calls WHERE id = ? AND tenant = ?`, id, tenant))
	if err == sql.ErrNoRows {
		return nil, fmt.Errorf("sqlite: call %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: call %s: %w", id, err)
	}
	return c, nil
}

// LiveCalls returns every call that has not ended.
func (db *DB) LiveCalls(ctx context.Context) ([]*call.Call, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+callCols+` FROM calls WHERE state <> 'ended'`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: live calls: %w", err)
	}
	defer rows.Close()
	var out []*call.Call
	for rows.Next() {
		c, err := scanCall(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: live calls: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: live calls: %w", err)
	}
	return out, nil
}

// Calls lists calls newest first. The cursor is the (started_at, id) of the last call
// of the previous page, so pages stay stable while new calls arrive.
func (db *DB) Calls(ctx context.Context, f store.CallFilter) (store.CallPage, error) {
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 100
	}
	var where []string
	var args []any
	from := `calls c`
	if len(f.Extensions) > 0 {
		// A call concerns an extension when any of its legs did; the join table keeps
		// that an index lookup instead of a scan of JSON.
		ph := strings.TrimSuffix(strings.Repeat("?,", len(f.Extensions)), ",")
		where = append(where, `c.id IN (SELECT call_id FROM call_extensions WHERE tenant = ? AND extension IN (`+ph+`))`)
		args = append(args, f.Tenant)
		for _, e := range f.Extensions {
			args = append(args, e)
		}
	}
	where = append(where, `c.tenant = ?`)
	args = append(args, f.Tenant)
	if f.Phone != "" || f.PhoneE164 != "" {
		switch {
		case f.PhoneE164 != "" && f.Phone != "":
			where = append(where, `(c.customer = ? OR c.customer_e164 = ?)`)
			args = append(args, f.Phone, f.PhoneE164)
		case f.PhoneE164 != "":
			where = append(where, `c.customer_e164 = ?`)
			args = append(args, f.PhoneE164)
		default:
			where = append(where, `c.customer = ?`)
			args = append(args, f.Phone)
		}
	}
	if f.Direction != "" {
		where = append(where, `c.direction = ?`)
		args = append(args, string(f.Direction))
	}
	if f.Disposition != "" {
		where = append(where, `c.disposition = ?`)
		args = append(args, string(f.Disposition))
	}
	if f.State != "" {
		where = append(where, `c.state = ?`)
		args = append(args, string(f.State))
	}
	if !f.From.IsZero() {
		where = append(where, `c.started_at >= ?`)
		args = append(args, micros(f.From))
	}
	if !f.To.IsZero() {
		where = append(where, `c.started_at < ?`)
		args = append(args, micros(f.To))
	}
	if f.Cursor != "" {
		at, id, err := decodeCursor(f.Cursor)
		if err != nil {
			return store.CallPage{}, err
		}
		where = append(where, `(c.started_at < ? OR (c.started_at = ? AND c.id < ?))`)
		args = append(args, at, at, id)
	}
	q := `SELECT c.tenant, c.data, c.acc, c.started_at FROM ` + from + ` WHERE ` + strings.Join(where, ` AND `) +
		` ORDER BY c.started_at DESC, c.id DESC LIMIT ?`
	args = append(args, f.Limit+1)
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return store.CallPage{}, fmt.Errorf("sqlite: calls: %w", err)
	}
	defer rows.Close()
	var page store.CallPage
	var lastAt int64
	for rows.Next() {
		var tenant string
		var data, acc []byte
		var at int64
		if err := rows.Scan(&tenant, &data, &acc, &at); err != nil {
			return store.CallPage{}, fmt.Errorf("sqlite: calls: %w", err)
		}
		if len(page.Calls) == f.Limit {
			last := page.Calls[len(page.Calls)-1]
			page.Next = encodeCursor(lastAt, last.ID)
			break
		}
		c := &call.Call{}
		if err := json.Unmarshal(data, c); err != nil {
			return store.CallPage{}, fmt.Errorf("sqlite: calls: decode: %w", err)
		}
		c.Tenant = tenant
		page.Calls = append(page.Calls, c)
		lastAt = at
	}
	if err := rows.Err(); err != nil {
		return store.CallPage{}, fmt.Errorf("sqlite: calls: %w", err)
	}
	return page, nil
}

func encodeCursor(at int64, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(at, 10) + ":" + id))
}

func decodeCursor(s string) (int64, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return 0, "", fmt.Errorf("sqlite: %w: bad cursor", store.ErrInvalid)
	}
	at, id, ok := strings.Cut(string(b), ":")
	if !ok || id == "" {
		return 0, "", fmt.Errorf("sqlite: %w: bad cursor", store.ErrInvalid)
	}
	n, err := strconv.ParseInt(at, 10, 64)
	if err != nil {
		return 0, "", fmt.Errorf("sqlite: %w: bad cursor", store.ErrInvalid)
	}
	return n, id, nil
}
