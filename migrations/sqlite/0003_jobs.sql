-- One durable job queue (issue 7): mail now, federation deliveries next. See the `jobs` module
-- of the instance for the design; this file is the storage it relies on.

-- A job: one unit of outgoing work for one destination. `state` is 'pending' (queued, running
-- or waiting to retry), 'done' or 'dead' (given up, kept for admins). A job is running while
-- `lease_until` is in the future: the worker `leased_by` holds it, and any worker may take it
-- again once the lease has expired (its process died). `payload` is the handler's input; it
-- is cleared when the job is done, so a sent message's text does not stay in the database.
CREATE TABLE jobs (
    id              INTEGER PRIMARY KEY,
    kind            TEXT   NOT NULL,
    -- Unique: enqueuing the same key twice stores one job. Mail derives its Message-ID from it.
    idempotency_key TEXT   NOT NULL UNIQUE,
    -- Where the job goes (for mail the SMTP server, for federation a remote instance); jobs of a
    -- failing destination are held, see job_destinations.
    destination     TEXT   NOT NULL,
    -- What the job is about, for the people who follow it (e.g. 'election:3:ballot').
    tag             TEXT   NOT NULL DEFAULT '',
    payload         TEXT,
    state           TEXT   NOT NULL DEFAULT 'pending',
    attempts        BIGINT NOT NULL DEFAULT 0,
    max_attempts    BIGINT NOT NULL,
    run_at          BIGINT NOT NULL,
    leased_by       TEXT,
    lease_until     BIGINT,
    created_at      BIGINT NOT NULL,
    finished_at     BIGINT,
    last_error      TEXT
);
-- The claim query: pending jobs in due order.
CREATE INDEX jobs_due ON jobs (state, run_at);
CREATE INDEX jobs_destination ON jobs (destination, state);
CREATE INDEX jobs_tag ON jobs (tag);

-- Destinations that have failed at least once. A missing row is a healthy destination. After
-- consecutive failures a destination is 'failing', then 'unreachable': its jobs are held, and
-- one job at a time is tried as a probe (no earlier than `next_probe_at`, by the worker holding
-- the probe lease `probe_by`/`probe_until`) until one succeeds and the state is 'ok' again.
CREATE TABLE job_destinations (
    id                   TEXT   PRIMARY KEY,
    state                TEXT   NOT NULL DEFAULT 'ok',
    consecutive_failures BIGINT NOT NULL DEFAULT 0,
    last_error           TEXT,
    last_failure_at      BIGINT,
    last_success_at      BIGINT,
    next_probe_at        BIGINT,
    probe_by             TEXT,
    probe_until          BIGINT
);

-- The old email outbox becomes mail jobs. Unsent rows stay pending (their destination is
-- assigned by the mail worker when it starts, from the SMTP settings of the day); sent rows
-- become done jobs without their text (stewards' delivery counts stay right); rows that were
-- given up become dead jobs with their error. Their keys name the old row, so each row is
-- one job and keeps one Message-ID.
INSERT INTO jobs (kind, idempotency_key, destination, tag, payload, state, attempts, max_attempts,
                  run_at, created_at, finished_at, last_error)
SELECT 'mail', 'email_outbox:' || id, 'mail:unassigned', kind,
       CASE WHEN sent_at IS NULL
            THEN json_object('to', recipient, 'subject', subject, 'body', body)
       END,
       CASE WHEN sent_at IS NOT NULL THEN 'done' WHEN failed_at IS NOT NULL THEN 'dead' ELSE 'pending' END,
       attempts, 8, next_attempt_at, created_at, COALESCE(sent_at, failed_at), last_error
FROM email_outbox ORDER BY id;

DROP TABLE email_outbox;
