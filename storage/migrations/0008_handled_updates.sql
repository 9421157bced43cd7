-- 0008: the Telegram updates the bot has taken, so one Telegram sends again (a webhook
-- delivery it thinks failed, e.g. after a slow answer; the same update_id) is handled once.
-- Rows older than a day are pruned: Telegram gives up redelivering long before, and an
-- update_id is only reused after a week without updates (then chosen at random).
CREATE TABLE handled_updates (
    update_id   INTEGER PRIMARY KEY,
    handled_at  REAL    NOT NULL
);
CREATE INDEX handled_updates_at ON handled_updates (handled_at);
