-- Convene foundation schema (SQLite). Timestamps are unix seconds (BIGINT) so that the same
-- queries run unchanged on SQLite and PostgreSQL through sqlx's Any driver; flags are 0/1.

-- Key/value settings the instance creates for itself (secrets, first-run facts).
CREATE TABLE instance_settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- A Passport: a person's account. `domain` is '' for Passports of this instance; remote
-- Passports (federation) keep their home domain, so (handle, domain) is the identity.
CREATE TABLE passports (
    id                INTEGER PRIMARY KEY,
    handle            TEXT    NOT NULL,
    domain            TEXT    NOT NULL DEFAULT '',
    email             TEXT,
    display_name      TEXT    NOT NULL,
    is_operator       INTEGER NOT NULL DEFAULT 0,
    -- 'maintainer' or 'contributor' for the Worker constituency, NULL otherwise.
    worker_role       TEXT,
    email_verified_at BIGINT,
    -- For remote Passports: the ActivityPub actor id.
    actor_url         TEXT,
    created_at        BIGINT  NOT NULL,
    UNIQUE (handle, domain)
);
CREATE UNIQUE INDEX passports_local_email ON passports (email) WHERE domain = '';

-- One-time sign-in and sign-up codes. Only a hash of the code is stored.
CREATE TABLE login_codes (
    id           INTEGER PRIMARY KEY,
    email        TEXT    NOT NULL,
    code_hash    TEXT    NOT NULL,
    -- 'signin' or 'signup'; a sign-up carries the requested handle and name.
    purpose      TEXT    NOT NULL,
    handle       TEXT,
    display_name TEXT,
    attempts     BIGINT  NOT NULL DEFAULT 0,
    created_at   BIGINT  NOT NULL,
    expires_at   BIGINT  NOT NULL,
    used_at      BIGINT
);
CREATE INDEX login_codes_email ON login_codes (email, created_at);

-- Server-side sessions; the cookie holds the secret, the row its SHA-256.
-- passport_id is NULL for a guest who unlocked a room or gave a display name.
CREATE TABLE sessions (
    token_hash   TEXT PRIMARY KEY,
    passport_id  BIGINT REFERENCES passports (id) ON DELETE CASCADE,
    guest_name   TEXT,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX sessions_passport ON sessions (passport_id);

-- Personal access tokens for the JSON API (bearer auth); only the hash is kept.
CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    passport_id  BIGINT NOT NULL REFERENCES passports (id) ON DELETE CASCADE,
    name         TEXT   NOT NULL,
    token_hash   TEXT   NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);

-- A Space. `domain` '' marks local Spaces; partners' Spaces will be cached with theirs.
CREATE TABLE spaces (
    id               INTEGER PRIMARY KEY,
    slug             TEXT    NOT NULL,
    domain           TEXT    NOT NULL DEFAULT '',
    name             TEXT    NOT NULL,
    description      TEXT    NOT NULL DEFAULT '',
    listed           INTEGER NOT NULL DEFAULT 1,
    entrance_room_id BIGINT,
    created_at       BIGINT  NOT NULL,
    UNIQUE (slug, domain)
);

CREATE TABLE space_members (
    space_id    BIGINT NOT NULL REFERENCES spaces (id) ON DELETE CASCADE,
    passport_id BIGINT NOT NULL REFERENCES passports (id) ON DELETE CASCADE,
    -- 'owner' or 'member'
    role        TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (space_id, passport_id)
);
CREATE INDEX space_members_passport ON space_members (passport_id);

CREATE TABLE invitations (
    id          INTEGER PRIMARY KEY,
    space_id    BIGINT NOT NULL REFERENCES spaces (id) ON DELETE CASCADE,
    email       TEXT   NOT NULL,
    role        TEXT   NOT NULL,
    token_hash  TEXT   NOT NULL UNIQUE,
    invited_by  BIGINT REFERENCES passports (id) ON DELETE SET NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    accepted_at BIGINT,
    declined_at BIGINT,
    revoked_at  BIGINT
);
CREATE INDEX invitations_space ON invitations (space_id);

CREATE TABLE rooms (
    id          INTEGER PRIMARY KEY,
    space_id    BIGINT  NOT NULL REFERENCES spaces (id) ON DELETE CASCADE,
    slug        TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    topic       TEXT    NOT NULL DEFAULT '',
    -- 'open', 'members' or 'locked'
    access      TEXT    NOT NULL,
    -- The code members share with guests of a locked room (shown to members).
    access_code TEXT,
    listed      INTEGER NOT NULL DEFAULT 1,
    capacity    BIGINT  NOT NULL DEFAULT 12,
    created_at  BIGINT  NOT NULL,
    UNIQUE (space_id, slug)
);

-- Rooms a session has unlocked with the right access code.
CREATE TABLE session_unlocks (
    token_hash TEXT   NOT NULL REFERENCES sessions (token_hash) ON DELETE CASCADE,
    room_id    BIGINT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    PRIMARY KEY (token_hash, room_id)
);

-- Failed access-code attempts, for rate limiting per client and per room.
CREATE TABLE access_attempts (
    id         INTEGER PRIMARY KEY,
    room_id    BIGINT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    client_key TEXT   NOT NULL,
    at         BIGINT NOT NULL
);
CREATE INDEX access_attempts_room ON access_attempts (room_id, client_key, at);

-- Email outbox: one row per recipient and message, sent once by the mail worker, retried on
-- failure with backoff.
CREATE TABLE email_outbox (
    id              INTEGER PRIMARY KEY,
    recipient       TEXT   NOT NULL,
    subject         TEXT   NOT NULL,
    body            TEXT   NOT NULL,
    kind            TEXT   NOT NULL,
    created_at      BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    sent_at         BIGINT,
    failed_at       BIGINT,
    last_error      TEXT
);
CREATE INDEX email_outbox_pending ON email_outbox (sent_at, next_attempt_at);
