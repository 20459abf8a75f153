-- callbridge schema, version 2: a call's timeline (GET /api/v1/calls/{id}/events)
-- reads the log by call, which without this index is a scan of the whole log.
-- Version 1 wrote an empty call_id for events the hub encoded itself (their call is
-- only in the payload); fill it in from the payload once.

UPDATE events SET call_id = COALESCE(json_extract(CAST(payload AS TEXT), '$.call.id'), '')
WHERE call_id = '' AND json_valid(CAST(payload AS TEXT));

CREATE INDEX events_call ON events (tenant, call_id, seq);
