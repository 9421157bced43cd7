-- 0010: promo codes and referrals (issue 15 items 3 and 4), each credit a ledger kind of its
-- own that names its source. The rules that must never break live in the database itself:
-- a code's last use is taken once (the uses <= max_uses CHECK, reached by a conditional
-- UPDATE in the crediting transaction), a once-per-user code is redeemed once per user (a
-- partial unique index), every 'promo' entry credits one redemption and every 'referral'
-- entry one completed purchase of the wallet owner's referee, once (unique indexes).
-- It does not depend on 0009 (crypto top-ups), written in parallel.

CREATE TABLE promo_codes (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    -- Case-insensitive: "spring" redeems SPRING, and SPRING and spring cannot both exist.
    code           TEXT    NOT NULL UNIQUE COLLATE NOCASE
        CHECK (length(code) BETWEEN 3 AND 32),
    amount_units   INTEGER NOT NULL
        CHECK (typeof(amount_units) = 'integer' AND amount_units > 0),
    max_uses       INTEGER NOT NULL CHECK (typeof(max_uses) = 'integer' AND max_uses > 0),
    uses           INTEGER NOT NULL DEFAULT 0
        CHECK (typeof(uses) = 'integer' AND uses >= 0 AND uses <= max_uses),
    expires_at     REAL,                            -- NULL: never
    once_per_user  INTEGER NOT NULL DEFAULT 1 CHECK (once_per_user IN (0, 1)),
    created_by     INTEGER NOT NULL,                -- the admin's Telegram id
    created_at     REAL    NOT NULL
);

CREATE TABLE promo_redemptions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    code_id     INTEGER NOT NULL REFERENCES promo_codes (id),
    user_id     INTEGER NOT NULL REFERENCES users (id),
    wallet_id   INTEGER NOT NULL REFERENCES wallets (id),
    -- A copy of the code's once_per_user (kept equal by the trigger below), so that the
    -- partial unique index can hold "once per user" without looking at another table.
    once        INTEGER NOT NULL CHECK (once IN (0, 1)),
    created_at  REAL    NOT NULL
);
CREATE UNIQUE INDEX promo_once_per_user ON promo_redemptions (code_id, user_id) WHERE once = 1;
CREATE INDEX promo_redemptions_by_user ON promo_redemptions (user_id);

CREATE TRIGGER promo_redemption_once_matches BEFORE INSERT ON promo_redemptions
WHEN NEW.once IS NOT (SELECT once_per_user FROM promo_codes WHERE id = NEW.code_id)
BEGIN
    SELECT RAISE(ABORT, 'a redemption must copy its code''s once_per_user');
END;

CREATE TABLE referrals (
    referee_id    INTEGER PRIMARY KEY REFERENCES users (id),  -- tied once, never re-tied
    referrer_id   INTEGER NOT NULL REFERENCES users (id),
    -- What the referrer has earned from this referee, moved with every 'referral' entry;
    -- REFERRAL_CAP_USD bounds it.
    earned_units  INTEGER NOT NULL DEFAULT 0
        CHECK (typeof(earned_units) = 'integer' AND earned_units >= 0),
    created_at    REAL    NOT NULL,
    CHECK (referee_id <> referrer_id)
);
CREATE INDEX referrals_by_referrer ON referrals (referrer_id);

INSERT INTO ledger_kinds (kind, sign) VALUES ('promo', 1), ('referral', 1);

-- A 'promo' entry names its redemption (and only a 'promo' entry does); a 'referral' entry
-- names the purchase that earned it in activation_id. ADD COLUMN is the only way to add a
-- CHECK to the append-only ledger without rebuilding it; a column CHECK may name any column.
ALTER TABLE ledger ADD COLUMN promo_redemption_id INTEGER REFERENCES promo_redemptions (id)
    CHECK ((kind = 'promo') = (promo_redemption_id IS NOT NULL)
           AND (kind <> 'referral' OR activation_id IS NOT NULL));
CREATE UNIQUE INDEX ledger_one_promo ON ledger (promo_redemption_id) WHERE kind = 'promo';
CREATE UNIQUE INDEX ledger_one_referral ON ledger (activation_id) WHERE kind = 'referral';

-- A referral credit goes only to the referrer's own wallet, for a completed purchase of a
-- user they referred: a refunded (never completed) purchase can earn nothing.
CREATE TRIGGER ledger_referral_source BEFORE INSERT ON ledger
WHEN NEW.kind = 'referral' AND NOT EXISTS (
    SELECT 1
    FROM activations a
    JOIN referrals r ON r.referee_id = a.user_id
    JOIN wallets w ON w.owner_kind = 'user' AND w.owner_id = r.referrer_id
    WHERE a.id = NEW.activation_id AND a.state = 'completed' AND w.id = NEW.wallet_id
)
BEGIN
    SELECT RAISE(ABORT, 'a referral credit must be for a completed purchase of a referee');
END;
