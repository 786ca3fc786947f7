-- Remote actors fetched to check their signatures (ARCHITECTURE.md §6): kept so that a second
-- activity from the same sender is verified without fetching its actor again. A row is used
-- for a day after `fetched_at`, then fetched again; a signature that fails with the stored key
-- fetches it again at once (the sender may have rotated its key).
CREATE TABLE federation_remote_actors (
    -- The actor's id (its URL).
    actor_id       TEXT   PRIMARY KEY,
    -- The id of the key its document publishes (`{actor}#main-key` on most servers), which
    -- is what a `Signature` header names.
    key_id         TEXT   NOT NULL,
    inbox          TEXT   NOT NULL,
    shared_inbox   TEXT,
    public_key_pem TEXT   NOT NULL,
    -- The validated actor document as JSON, so a use case that needs more than the key (a
    -- Follow needs the follower's inboxes) reads it here too.
    document       TEXT   NOT NULL,
    fetched_at     BIGINT NOT NULL
);
CREATE INDEX federation_remote_actors_key ON federation_remote_actors (key_id);
