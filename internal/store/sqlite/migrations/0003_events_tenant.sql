-- callbridge schema, version 3: a tenant reads the log from a cursor (GET
-- /api/v1/events, WebSocket resume, a subscription that fell behind the ring). With
-- only the seq key, that read steps over every other tenant's events after the
-- cursor; with this index it reads only its own.

CREATE INDEX events_tenant ON events (tenant, seq);
