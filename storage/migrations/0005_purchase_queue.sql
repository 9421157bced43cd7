-- 0005: the purchase queue (PRODUCT.md section 7). The upstream sells 10 numbers a minute per
-- account; buyers beyond that wait here, first come first served.
--
-- A row means: the buyer's money is held (the activation is `purchasing`, with its 'purchase'
-- ledger entry) and the upstream purchase call has NOT been sent. The queue worker deletes the
-- row in the transaction just before it sends the call, so "in the queue" always means "never
-- sent" and reconciliation, which judges `purchasing` rows against /history, skips queued ones.
-- The place in line is the activation id: ids are handed out in the order the holds commit,
-- and a head put back after a 429 keeps its id, so it stays the head.
CREATE TABLE purchase_queue (
    activation_id  INTEGER PRIMARY KEY REFERENCES activations (id),
    wallet_id      INTEGER NOT NULL REFERENCES wallets (id),  -- the cap on places is per wallet
    joined_at      REAL    NOT NULL,
    -- How often the head was sent and put back (a 429, an unreachable upstream).
    deferrals      INTEGER NOT NULL DEFAULT 0 CHECK (typeof(deferrals) = 'integer' AND deferrals >= 0)
);
CREATE INDEX purchase_queue_by_wallet ON purchase_queue (wallet_id);

CREATE TRIGGER purchase_queue_only_purchasing BEFORE INSERT ON purchase_queue
WHEN (SELECT state FROM activations WHERE id = NEW.activation_id) IS NOT 'purchasing'
BEGIN
    SELECT RAISE(ABORT, 'only a purchasing activation can wait in the purchase queue');
END;

-- Whatever the code above does, a queued activation cannot be settled (refunded, linked) while
-- it still has its place: it must leave the queue in the same transaction first.
CREATE TRIGGER activations_queued_stay_purchasing BEFORE UPDATE OF state ON activations
WHEN NEW.state <> 'purchasing'
    AND EXISTS (SELECT 1 FROM purchase_queue WHERE activation_id = NEW.id)
BEGIN
    SELECT RAISE(ABORT, 'a queued activation must leave the purchase queue before it settles');
END;
