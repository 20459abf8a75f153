-- callbridge schema, version 1. Times are unix microseconds (UTC).

CREATE TABLE tenants (
    name       TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL
);
INSERT INTO tenants (name, created_at) VALUES ('default', 0);

CREATE TABLE integrations (
    tenant     TEXT NOT NULL REFERENCES tenants(name),
    client_id  TEXT NOT NULL,
    scope      TEXT NOT NULL,
    crm_user   TEXT NOT NULL DEFAULT '',
    key_hash   BLOB NOT NULL UNIQUE,
    key_prefix TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    rotated_at INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, client_id)
);

CREATE TABLE extensions (
    tenant      TEXT NOT NULL,
    number      TEXT NOT NULL,
    pbx         TEXT NOT NULL,
    name        TEXT NOT NULL DEFAULT '',
    api_enabled INTEGER NOT NULL DEFAULT 0,
    status      TEXT NOT NULL DEFAULT '',
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant, number)
) WITHOUT ROWID;

CREATE TABLE mappings (
    tenant    TEXT NOT NULL,
    crm_user  TEXT NOT NULL,
    extension TEXT NOT NULL,
    PRIMARY KEY (tenant, crm_user, extension)
) WITHOUT ROWID;
CREATE INDEX mappings_by_extension ON mappings (tenant, extension);

CREATE TABLE calls (
    id            TEXT PRIMARY KEY,
    tenant        TEXT NOT NULL,
    pbx           TEXT NOT NULL,
    pbx_call_id   TEXT NOT NULL,
    state         TEXT NOT NULL,
    direction     TEXT NOT NULL,
    customer      TEXT NOT NULL,
    customer_e164 TEXT NOT NULL,
    disposition   TEXT NOT NULL,
    started_at    INTEGER NOT NULL,
    data          BLOB NOT NULL,
    acc           BLOB NOT NULL
);
CREATE INDEX calls_by_time ON calls (tenant, started_at DESC, id DESC);
CREATE INDEX calls_by_customer ON calls (tenant, customer);
CREATE INDEX calls_by_e164 ON calls (tenant, customer_e164) WHERE customer_e164 <> '';
CREATE INDEX calls_live ON calls (state) WHERE state <> 'ended';

CREATE TABLE call_extensions (
    tenant     TEXT NOT NULL,
    extension  TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    call_id    TEXT NOT NULL,
    PRIMARY KEY (tenant, extension, started_at, call_id)
) WITHOUT ROWID;

CREATE TABLE events (
    seq     INTEGER PRIMARY KEY,
    tenant  TEXT NOT NULL,
    type    TEXT NOT NULL,
    call_id TEXT NOT NULL,
    exts    TEXT NOT NULL,
    users   TEXT NOT NULL,
    payload BLOB NOT NULL
);

CREATE TABLE webhooks (
    tenant     TEXT NOT NULL,
    id         TEXT NOT NULL,
    url        TEXT NOT NULL,
    secret     TEXT NOT NULL,
    events     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, id)
);

CREATE TABLE deliveries (
    id         INTEGER PRIMARY KEY,
    tenant     TEXT NOT NULL,
    webhook_id TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    next_at    INTEGER NOT NULL,
    status     TEXT NOT NULL,
    last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX deliveries_due ON deliveries (next_at) WHERE status = 'pending';
