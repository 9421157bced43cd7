-- 0008: reserved. Migrations are numbered without gaps and this round's 0008 comes from
-- another branch; this step keeps 0009 applicable on its own until that one lands and
-- replaces it. It changes nothing.
SELECT 1;
