-- 0004: top-ups, groups and the admin panel.

-- Where the number and code of a purchase made in a group go: to the buyer's private chat
-- (when they have started the bot) or to the group itself. The buyer chooses.
ALTER TABLE users ADD COLUMN group_codes TEXT NOT NULL DEFAULT 'private'
    CHECK (group_codes IN ('private', 'group'));

-- Admins look users up by @username; Telegram usernames are case-insensitive.
CREATE INDEX users_by_username ON users (username COLLATE NOCASE);

-- One row per money movement started by a button or a command that Telegram may deliver
-- twice (a double tap, a redelivered update): written in the same transaction as the
-- movement, so the second attempt finds the key and moves nothing.
CREATE TABLE action_keys (
    key         TEXT    PRIMARY KEY,
    kind        TEXT    NOT NULL,
    ledger_id   INTEGER REFERENCES ledger (id),  -- the entry the action wrote, if any
    created_at  REAL    NOT NULL
) WITHOUT ROWID;

-- A broadcast is drafted (the admin sees a preview), then confirmed once; confirming queues
-- one outbox message per recipient in the same transaction.
CREATE TABLE broadcasts (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    admin_id      INTEGER NOT NULL,
    text          TEXT    NOT NULL,             -- HTML, as the admin wrote it
    created_at    REAL    NOT NULL,
    confirmed_at  REAL,
    cancelled_at  REAL,
    recipients    INTEGER CHECK (recipients IS NULL OR recipients >= 0),
    CHECK (confirmed_at IS NULL OR cancelled_at IS NULL)
);
