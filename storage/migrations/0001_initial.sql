-- 0001: the first schema. Money columns are INTEGER units of 1/10 000 USD and every one of
-- them checks typeof() = 'integer': SQLite would otherwise store 1.5 as REAL without a word.
-- Timestamps are REAL unix seconds.

CREATE TABLE users (
    id          INTEGER PRIMARY KEY,            -- the Telegram user id
    username    TEXT,
    first_name  TEXT    NOT NULL DEFAULT '',
    language    TEXT,
    banned      INTEGER NOT NULL DEFAULT 0 CHECK (banned IN (0, 1)),
    inactive    INTEGER NOT NULL DEFAULT 0 CHECK (inactive IN (0, 1)),  -- blocked the bot
    created_at  REAL    NOT NULL
);

CREATE TABLE chats (
    id                        INTEGER PRIMARY KEY,  -- the Telegram chat id (negative for groups)
    type                      TEXT    NOT NULL,
    title                     TEXT,
    member_daily_limit_units  INTEGER
        CHECK (member_daily_limit_units IS NULL
               OR (typeof(member_daily_limit_units) = 'integer' AND member_daily_limit_units >= 0)),
    created_at                REAL    NOT NULL
);

CREATE TABLE wallets (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    owner_kind  TEXT    NOT NULL CHECK (owner_kind IN ('user', 'group')),
    owner_id    INTEGER NOT NULL,
    -- A cache of SUM(ledger.amount), kept by the ledger_apply trigger below.
    balance     INTEGER NOT NULL DEFAULT 0 CHECK (typeof(balance) = 'integer' AND balance >= 0),
    created_at  REAL    NOT NULL,
    UNIQUE (owner_kind, owner_id)
);

-- A wallet is born empty; money only ever arrives through a ledger entry.
CREATE TRIGGER wallets_start_empty BEFORE INSERT ON wallets
WHEN NEW.balance <> 0
BEGIN
    SELECT RAISE(ABORT, 'a new wallet must start at 0; credit it through the ledger');
END;

-- The kinds of ledger entry and the sign each must have (0: either). A table rather than a
-- CHECK list so that a later migration adds a kind with one INSERT instead of rebuilding the
-- append-only ledger.
CREATE TABLE ledger_kinds (
    kind  TEXT    PRIMARY KEY,
    sign  INTEGER NOT NULL CHECK (sign IN (-1, 0, 1))
);
INSERT INTO ledger_kinds (kind, sign) VALUES
    ('topup', 1),
    ('stars', 1),
    ('purchase', -1),
    ('refund', 1),
    ('transfer_in', 1),
    ('transfer_out', -1),
    ('adjustment', 0),
    ('sandbox_bonus', 1);

CREATE TABLE activations (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id          INTEGER NOT NULL REFERENCES users (id),
    wallet_id        INTEGER NOT NULL REFERENCES wallets (id),
    chat_id          INTEGER,                   -- the chat it was bought in
    state            TEXT    NOT NULL CHECK (state IN
        ('purchasing', 'waiting', 'completed', 'cancelled', 'expired', 'failed', 'unknown')),
    service_code     TEXT    NOT NULL,
    service_name     TEXT    NOT NULL,
    provider_id      TEXT,
    country          TEXT    NOT NULL,
    user_price       INTEGER NOT NULL CHECK (typeof(user_price) = 'integer' AND user_price > 0),
    upstream_price   INTEGER NOT NULL
        CHECK (typeof(upstream_price) = 'integer' AND upstream_price >= 0),  -- expected
    upstream_amount  INTEGER
        CHECK (upstream_amount IS NULL
               OR (typeof(upstream_amount) = 'integer' AND upstream_amount >= 0)),  -- charged
    idempotency_key  TEXT    NOT NULL UNIQUE,
    -- Random, carried in the order's app_name so /history finds an order whose answer was lost.
    recon_token      TEXT    NOT NULL UNIQUE,
    upstream_id      TEXT    UNIQUE,
    phone_number     TEXT,
    code             TEXT,
    error_code       TEXT,
    created_at       REAL    NOT NULL,
    purchased_at     REAL,
    cancel_after     REAL,                      -- when the upstream cancel lock ends
    completed_at     REAL,
    finished_at      REAL,
    card_chat_id     INTEGER,
    card_message_id  INTEGER,
    next_poll_at     REAL,
    poll_attempts    INTEGER NOT NULL DEFAULT 0,
    CHECK (state <> 'waiting' OR upstream_id IS NOT NULL),
    CHECK (state <> 'completed' OR code IS NOT NULL)
);
CREATE INDEX activations_by_user ON activations (user_id, created_at);
CREATE INDEX activations_by_state ON activations (state, next_poll_at);
CREATE INDEX activations_by_wallet ON activations (wallet_id, user_id, created_at);

CREATE TABLE payments (
    id                          INTEGER PRIMARY KEY AUTOINCREMENT,
    wallet_id                   INTEGER NOT NULL REFERENCES wallets (id),
    user_id                     INTEGER NOT NULL REFERENCES users (id),
    telegram_payment_charge_id  TEXT    NOT NULL UNIQUE,
    stars                       INTEGER NOT NULL CHECK (typeof(stars) = 'integer' AND stars > 0),
    amount_units                INTEGER NOT NULL
        CHECK (typeof(amount_units) = 'integer' AND amount_units > 0),
    payload                     TEXT    NOT NULL,
    status                      TEXT    NOT NULL DEFAULT 'paid'
        CHECK (status IN ('paid', 'refunded')),
    created_at                  REAL    NOT NULL,
    refunded_at                 REAL
);
CREATE INDEX payments_by_wallet ON payments (wallet_id);

CREATE TABLE ledger (
    id                      INTEGER PRIMARY KEY AUTOINCREMENT,
    wallet_id               INTEGER NOT NULL REFERENCES wallets (id),
    amount                  INTEGER NOT NULL CHECK (typeof(amount) = 'integer' AND amount <> 0),
    kind                    TEXT    NOT NULL REFERENCES ledger_kinds (kind),
    activation_id           INTEGER REFERENCES activations (id),
    payment_id              INTEGER REFERENCES payments (id),
    counterparty_wallet_id  INTEGER REFERENCES wallets (id),  -- the other side of a transfer
    actor_id                INTEGER,                           -- who caused it (user or admin)
    note                    TEXT,
    created_at              REAL    NOT NULL,
    CHECK (kind NOT IN ('purchase', 'refund') OR activation_id IS NOT NULL),
    CHECK (kind <> 'stars' OR payment_id IS NOT NULL),
    CHECK (kind NOT IN ('transfer_in', 'transfer_out') OR counterparty_wallet_id IS NOT NULL)
);
CREATE INDEX ledger_by_wallet ON ledger (wallet_id, id);
CREATE INDEX ledger_by_time ON ledger (created_at);
-- The database itself refuses a second charge or a second refund of one activation, and a
-- second credit of one Telegram payment, whatever the code above it does.
CREATE UNIQUE INDEX ledger_one_purchase ON ledger (activation_id) WHERE kind = 'purchase';
CREATE UNIQUE INDEX ledger_one_refund ON ledger (activation_id) WHERE kind = 'refund';
CREATE UNIQUE INDEX ledger_one_payment_credit ON ledger (payment_id) WHERE kind = 'stars';

CREATE TRIGGER ledger_sign BEFORE INSERT ON ledger
WHEN NEW.amount * (SELECT sign FROM ledger_kinds WHERE kind = NEW.kind) < 0
BEGIN
    SELECT RAISE(ABORT, 'ledger amount has the wrong sign for its kind');
END;

-- The cached balance moves in the same statement as the entry, so the two cannot disagree
-- through this code path, and the balance CHECK makes an overdraft abort the insert.
CREATE TRIGGER ledger_apply AFTER INSERT ON ledger
BEGIN
    UPDATE wallets SET balance = balance + NEW.amount WHERE id = NEW.wallet_id;
END;

CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
BEGIN
    SELECT RAISE(ABORT, 'the ledger is append-only');
END;

CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
BEGIN
    SELECT RAISE(ABORT, 'the ledger is append-only');
END;

CREATE TABLE settings (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    updated_at  REAL NOT NULL
);

CREATE TABLE outbox (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id          INTEGER NOT NULL,
    kind             TEXT    NOT NULL,
    payload          TEXT    NOT NULL CHECK (json_valid(payload)),
    dedupe_key       TEXT    UNIQUE,
    state            TEXT    NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'sent', 'failed', 'dropped')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  REAL    NOT NULL,
    last_error       TEXT,
    created_at       REAL    NOT NULL,
    sent_at          REAL,
    message_id       INTEGER
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
