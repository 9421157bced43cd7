-- 0003: the outbox sender marks a message while it is handing it to Telegram, so that after a
-- crash the messages whose fate is unknown (sent or not?) are told apart from those waiting
-- for a retry, and are resolved at start-up instead of waiting out their lease.
ALTER TABLE outbox ADD COLUMN sending_since REAL;
-- A user who blocked the bot has all their pending messages dropped at once.
CREATE INDEX outbox_by_chat ON outbox (chat_id, state);
