-- 0007: when a purchase call left, and which upstream cancels the bot still owes.
--
-- sent_at: set in the transaction that lets the purchase call go (the hold of a purchase that
-- goes straight through, or the queue worker's dequeue; again after a head put back by a 429).
-- Reconciliation measures its grace from it: a purchase that waited in line for minutes was not
-- yet seen by the upstream, and judging it by its hold time refunded numbers sold a moment
-- later. NULL for rows written before this migration: those are judged by created_at.
--
-- cancel_owed_at: the bot refunded the user for a number the upstream sold (found Expired, for
-- example) and has not yet heard the upstream refund it. A job calls /cancel for every such row
-- within the cancel budget and clears the mark once the upstream refunded or said there is
-- nothing to refund, so the operator's upstream balance follows the bot's books.
ALTER TABLE activations ADD COLUMN sent_at REAL;
ALTER TABLE activations ADD COLUMN cancel_owed_at REAL;
CREATE INDEX activations_cancel_owed ON activations (cancel_owed_at)
    WHERE cancel_owed_at IS NOT NULL;
