-- ferry-postgres schema version 3: the transactional outbox (ferry_postgres::Outbox) and
-- what its relay (ferry_postgres::Relay) remembers about destinations it cannot reach.
--
-- `outbox`: one row per message an application enqueued inside its own transaction.
-- `seq` orders the rows (taken at insert, so it is not commit order: the relay never
-- keeps a `seq > last_seen` cursor, it takes the lowest rows present and deletes what
-- it forwarded). `dest` is the destination as a key (`q:QUEUE` or `t:TOPIC:ROUTE.KEY`),
-- `body` is ferry_core::tx::encode_prepared's versioned record (destination + message).
CREATE TABLE outbox (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id         TEXT NOT NULL,
    dest       TEXT NOT NULL,
    body       BYTEA NOT NULL,
    created_at BIGINT NOT NULL DEFAULT now_ms()
);

-- `outbox_holds`: a destination whose last forward failed with a permanent error (no
-- such queue, unroutable publish, ...). Its rows stay, in order, and are skipped until
-- `until_ms`; the other destinations go on. Removed once the destination takes a row.
CREATE TABLE outbox_holds (
    dest            TEXT PRIMARY KEY,
    failures        INTEGER NOT NULL,
    until_ms        BIGINT NOT NULL,
    seq             BIGINT NOT NULL,
    last_error      TEXT NOT NULL,
    first_failed_at BIGINT NOT NULL
);
