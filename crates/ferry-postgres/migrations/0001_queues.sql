-- ferry-postgres schema version 1: queues, topics, bindings, messages, dead letters,
-- message history and the idempotency store. Runs with search_path set to the ferry
-- schema, so every name below lives there. Instants are epoch milliseconds (BIGINT)
-- from the server's clock (`now_ms()`), so every process uses one clock.
-- Versions 0002 (tx) and 0003 (outbox) are taken; add new migrations after them.

-- The server's clock in epoch milliseconds.
CREATE FUNCTION now_ms() RETURNS BIGINT
    LANGUAGE sql VOLATILE
    AS $$ SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::BIGINT $$;

-- One history event line: `[at_ms, "event", attempt, detail|null]` and a newline, the
-- format the embedded backend writes.
CREATE FUNCTION event_line(at BIGINT, event TEXT, attempt INTEGER, detail TEXT) RETURNS TEXT
    LANGUAGE sql IMMUTABLE
    AS $$ SELECT json_build_array(at, event, attempt, detail)::TEXT || E'\n' $$;

CREATE TABLE queues (
    qid              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name             TEXT NOT NULL UNIQUE,
    default_delay_ms BIGINT NOT NULL,
    max_attempts     BIGINT NOT NULL,
    lease_ms         BIGINT NOT NULL,
    paused           BOOLEAN NOT NULL DEFAULT FALSE,
    created_at       BIGINT NOT NULL
);

CREATE TABLE topics (
    name       TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL
);

CREATE TABLE bindings (
    topic   TEXT NOT NULL REFERENCES topics (name) ON DELETE CASCADE,
    queue   TEXT NOT NULL REFERENCES queues (name) ON DELETE CASCADE,
    pattern TEXT NOT NULL,
    PRIMARY KEY (topic, queue, pattern)
);
CREATE INDEX bindings_by_queue ON bindings (queue);

-- Live messages. state: 0 ready, 1 delayed, 2 leased. avail_at: when a ready message
-- became ready, when a delayed one falls due, when a lease ends. An acked message
-- leaves this table (its events move to `history`), so (qid, id) is unique among live
-- messages and a send of a live id is a no-op (ON CONFLICT DO NOTHING).
CREATE TABLE messages (
    seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    qid             BIGINT NOT NULL REFERENCES queues (qid) ON DELETE CASCADE,
    id              TEXT NOT NULL,
    state           SMALLINT NOT NULL,
    priority        SMALLINT NOT NULL,
    avail_at        BIGINT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    lease_token     BIGINT,
    enqueued_at     BIGINT NOT NULL,
    route_key       TEXT,
    headers         TEXT NOT NULL DEFAULT '',
    payload         BYTEA NOT NULL,
    last_error      TEXT,
    first_failed_at BIGINT,
    events          TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX messages_by_id ON messages (qid, id);
-- Receive: highest priority first, then the time it became ready, then send order.
CREATE INDEX messages_ready ON messages (qid, priority DESC, avail_at, seq) WHERE state = 0;
-- Promotion: delayed messages falling due and leases expiring.
CREATE INDEX messages_due ON messages (qid, avail_at) WHERE state IN (1, 2);

CREATE TABLE dead_letters (
    seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    qid             BIGINT NOT NULL REFERENCES queues (qid) ON DELETE CASCADE,
    id              TEXT NOT NULL,
    priority        SMALLINT NOT NULL,
    enqueued_at     BIGINT NOT NULL,
    route_key       TEXT,
    headers         TEXT NOT NULL DEFAULT '',
    payload         BYTEA NOT NULL,
    attempts        INTEGER NOT NULL,
    reason          TEXT NOT NULL,
    last_error      TEXT,
    first_failed_at BIGINT,
    dead_at         BIGINT NOT NULL,
    events          TEXT NOT NULL DEFAULT ''
);
CREATE INDEX dead_letters_by_queue ON dead_letters (qid, seq);
CREATE INDEX dead_letters_by_id ON dead_letters (qid, id, seq);

-- Finished lifecycles (acked messages, deleted dead letters), kept for the history
-- retention.
CREATE TABLE history (
    seq    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    qid    BIGINT NOT NULL REFERENCES queues (qid) ON DELETE CASCADE,
    id     TEXT NOT NULL,
    at     BIGINT NOT NULL,
    events TEXT NOT NULL
);
CREATE INDEX history_by_id ON history (qid, id);
CREATE INDEX history_by_at ON history (at);

-- The idempotency store. state: 1 in progress (claimed, fenced by token), 2 done.
CREATE TABLE idempotency (
    key        TEXT PRIMARY KEY,
    state      SMALLINT NOT NULL,
    token      BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX idempotency_by_expiry ON idempotency (expires_at) WHERE state = 2;
