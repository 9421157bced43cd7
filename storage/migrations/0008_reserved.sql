-- 0008: a placeholder on branch r2-promo only, so that 0010 applies (the migrator wants
-- numbers without gaps). DROP THIS FILE when merging: the real 0008 comes from another branch.
SELECT 1;
