-- 0009: Crypto Pay top-ups (issue 15). One row per invoice we created; its wallet is credited
-- through a 'crypto' ledger entry that names the row, at most once (the unique index below),
-- whether the payment was seen by the webhook or by polling getInvoices.

CREATE TABLE crypto_invoices (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    -- Invoice ids are per network: a testnet invoice 7 is not the mainnet's invoice 7.
    network       TEXT    NOT NULL CHECK (network IN ('mainnet', 'testnet', 'sandbox')),
    invoice_id    INTEGER NOT NULL CHECK (typeof(invoice_id) = 'integer' AND invoice_id > 0),
    -- Crypto Pay's hash of the invoice: an update must carry the same one to be ours (a
    -- sandbox that restarted hands out the same ids again).
    invoice_hash  TEXT    NOT NULL,
    wallet_id     INTEGER NOT NULL REFERENCES wallets (id),
    user_id       INTEGER NOT NULL REFERENCES users (id),  -- who asked for it
    chat_id       INTEGER NOT NULL,                         -- where its pay message is
    message_id    INTEGER,
    -- What we asked for and what a payment credits: USD units as WE stored them, never what
    -- an update says.
    amount_units  INTEGER NOT NULL
        CHECK (typeof(amount_units) = 'integer' AND amount_units > 0),
    fiat          TEXT    NOT NULL DEFAULT 'USD',
    pay_url       TEXT    NOT NULL,
    status        TEXT    NOT NULL DEFAULT 'active'
        CHECK (status IN ('active', 'paid', 'expired')),
    paid_asset    TEXT,
    paid_amount   TEXT,                                     -- as Crypto Pay wrote it
    created_at    REAL    NOT NULL,
    expires_at    REAL    NOT NULL,
    paid_at       REAL,
    credited_at   REAL,
    ended_at      REAL,                                     -- paid or expired
    UNIQUE (network, invoice_id),
    CHECK (status <> 'paid' OR credited_at IS NOT NULL)
);
CREATE INDEX crypto_invoices_by_status ON crypto_invoices (status, network, created_at);
CREATE INDEX crypto_invoices_by_wallet ON crypto_invoices (wallet_id, created_at);

INSERT INTO ledger_kinds (kind, sign) VALUES ('crypto', 1);

-- The entry names its invoice; a CHECK on the new column (SQLite cannot add a table CHECK to
-- the append-only ledger without rebuilding it), tested against every existing row too.
ALTER TABLE ledger ADD COLUMN crypto_invoice_id INTEGER REFERENCES crypto_invoices (id)
    CHECK (kind <> 'crypto' OR crypto_invoice_id IS NOT NULL);
CREATE UNIQUE INDEX ledger_one_crypto_credit ON ledger (crypto_invoice_id) WHERE kind = 'crypto';
