-- Federation state that must survive a restart (ARCHITECTURE.md §6): the local actors' key
-- pairs, who follows a Space from elsewhere, which activity ids were processed, and the
-- partner policy. Deliveries themselves are rows of the job queue (0003).

-- One RSA-2048 key pair per local actor (the instance, a Passport, a Space, a Room), made on
-- first need. Keyed by the actor's id (its URL) so a key belongs to exactly one actor
-- document; PEM, because that is how keys cross into the federation crate and how they
-- would move to another RSA implementation.
CREATE TABLE actor_keys (
    actor_id        TEXT   PRIMARY KEY,
    private_key_pem TEXT   NOT NULL,
    public_key_pem  TEXT   NOT NULL,
    created_at      BIGINT NOT NULL
);

-- Remote actors that follow a local actor (a Space), with where to deliver to them.
-- `accepted_at` is NULL while a follow waits for an owner (unlisted Spaces).
CREATE TABLE federation_followers (
    local_actor   TEXT   NOT NULL,
    remote_actor  TEXT   NOT NULL,
    -- The remote actor's host, so a block removes its follows in one statement.
    remote_host   TEXT   NOT NULL,
    inbox         TEXT   NOT NULL,
    shared_inbox  TEXT,
    follow_id     TEXT   NOT NULL,
    created_at    BIGINT NOT NULL,
    accepted_at   BIGINT,
    PRIMARY KEY (local_actor, remote_actor)
);
CREATE INDEX federation_followers_host ON federation_followers (remote_host);

-- Activity ids already processed: written in the transaction of the activity's effect, so a
-- replay changes nothing and a failure leaves nothing half-done.
CREATE TABLE federation_seen_activities (
    activity_id TEXT   PRIMARY KEY,
    received_at BIGINT NOT NULL
);

-- The partner policy's lists; the mode (open, allow-list, block-list) is the
-- `federation_policy` row of instance_settings.
CREATE TABLE federation_partners (
    domain     TEXT   PRIMARY KEY,
    -- 'partner' (allowed in allow-list mode) or 'blocked'.
    status     TEXT   NOT NULL CHECK (status IN ('partner', 'blocked')),
    created_at BIGINT NOT NULL
);
