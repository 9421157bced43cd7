-- 0002: services a user starred in the picker; they are listed first.
CREATE TABLE favourites (
    user_id       INTEGER NOT NULL REFERENCES users (id),
    service_code  TEXT    NOT NULL,
    created_at    REAL    NOT NULL,
    PRIMARY KEY (user_id, service_code)
) WITHOUT ROWID;
