-- ferry-postgres schema version 2: prepared two-phase messages (ferry_core::tx::TxStore).
-- `store` names a store (default 'default'), so applications can keep theirs apart;
-- `body` is ferry_core::tx::encode_prepared's versioned MessagePack record; `token`
-- fences whoever holds the record (its producer, then a checker's claim); `due_at`
-- (epoch ms, server clock) is when a checker may claim it.
CREATE TABLE tx_prepared (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    store       TEXT NOT NULL,
    id          TEXT NOT NULL,
    body        BYTEA NOT NULL,
    state       TEXT NOT NULL,
    checks      INTEGER NOT NULL DEFAULT 0,
    token       BIGINT NOT NULL,
    prepared_at BIGINT NOT NULL,
    due_at      BIGINT NOT NULL,
    last_error  TEXT,
    UNIQUE (store, id)
);
CREATE INDEX tx_prepared_due ON tx_prepared (store, due_at);
