-- Fair use (issue 9). Each account may have a bounded number of active runs; a run started beyond
-- that cap is stored `queued` (no token, no step message) and admitted, oldest first, in the
-- transaction that ends one of the account's active runs. The step queue then holds at most the cap's
-- worth of one account's work at a time, so other accounts' steps interleave with a flood.

-- `NOT VALID` then `VALIDATE`: the new check is enforced at once, and the scan of existing rows does
-- not hold the exclusive lock the ALTER takes.
ALTER TABLE runs DROP CONSTRAINT runs_status_check;
ALTER TABLE runs ADD CONSTRAINT runs_status_check
    CHECK (status IN ('queued', 'active', 'completed', 'failed', 'cancelled', 'timed_out')) NOT VALID;
ALTER TABLE runs VALIDATE CONSTRAINT runs_status_check;

-- Admission: an account's queued runs in arrival order, and how many of its runs are active.
CREATE INDEX runs_queued ON runs (account_id, created_at, id) WHERE status = 'queued';
CREATE INDEX runs_active_by_account ON runs (account_id) WHERE status = 'active';

-- Per-account overrides of the operator's defaults (PHLO_RATE_*, PHLO_MAX_ACTIVE_RUNS), set through
-- the admin API. NULL keeps the default; a rate of 0 means unlimited.
CREATE TABLE account_limits (
    account_id       uuid PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    api_per_sec      double precision CHECK (api_per_sec >= 0),
    api_burst        int CHECK (api_burst >= 1),
    runs_per_sec     double precision CHECK (runs_per_sec >= 0),
    runs_burst       int CHECK (runs_burst >= 1),
    max_active_runs  int CHECK (max_active_runs >= 1),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
