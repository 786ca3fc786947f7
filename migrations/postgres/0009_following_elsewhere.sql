-- Following from here (issue 8): Spaces on other instances that Passports here follow, the
-- Rooms those Spaces announce, and what admins learn about a partner from its NodeInfo.

-- A remote Space (an ActivityPub Group) someone here follows or tried to follow, as its actor
-- document last said. Names and summaries are stored as plain text (markup stripped on the way
-- in); `page_url` is the page people open, `inbox`/`shared_inbox` where activities go.
CREATE TABLE remote_spaces (
    actor_id     TEXT    PRIMARY KEY,
    -- The actor's host (with port), so a block removes the host's Spaces in one statement.
    host         TEXT    NOT NULL,
    -- `name@host`, from preferredUsername (or the id's last segment).
    handle       TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    summary      TEXT    NOT NULL DEFAULT '',
    page_url     TEXT    NOT NULL,
    inbox        TEXT    NOT NULL,
    shared_inbox TEXT,
    updated_at   BIGINT  NOT NULL
);
CREATE INDEX remote_spaces_host ON remote_spaces (host);

-- A Passport's follow of a remote Space. `state` is 'pending' until the Space answers with
-- Accept ('accepted') or Reject ('rejected'). `follow_id` is our Follow activity's id, which
-- the answer names and an Undo repeats.
CREATE TABLE remote_follows (
    passport_id BIGINT  NOT NULL REFERENCES passports (id) ON DELETE CASCADE,
    space_actor TEXT    NOT NULL REFERENCES remote_spaces (actor_id) ON DELETE CASCADE,
    follow_id   TEXT    NOT NULL UNIQUE,
    state       TEXT    NOT NULL CHECK (state IN ('pending', 'accepted', 'rejected')),
    created_at  BIGINT  NOT NULL,
    answered_at BIGINT,
    PRIMARY KEY (passport_id, space_actor)
);
CREATE INDEX remote_follows_space ON remote_follows (space_actor);

-- A Room of a remote Space as its Space last announced it (Create/Update of the Room actor
-- with its `convene:` properties); an announced Delete removes the row.
CREATE TABLE remote_rooms (
    actor_id    TEXT    PRIMARY KEY,
    space_actor TEXT    NOT NULL REFERENCES remote_spaces (actor_id) ON DELETE CASCADE,
    name        TEXT    NOT NULL,
    page_url    TEXT    NOT NULL,
    -- 'open', 'members-only' or 'locked', as the convene: context spells them.
    access_mode TEXT    NOT NULL,
    capacity    BIGINT  NOT NULL,
    head_count  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);
CREATE INDEX remote_rooms_space ON remote_rooms (space_actor);

-- What a partner's NodeInfo said when an admin added it or checked it last: NULLs until then.
-- `reachable` is 1 when the last check got a NodeInfo document, 0 when it failed.
ALTER TABLE federation_partners ADD COLUMN software   TEXT;
ALTER TABLE federation_partners ADD COLUMN version    TEXT;
ALTER TABLE federation_partners ADD COLUMN reachable  BIGINT;
ALTER TABLE federation_partners ADD COLUMN check_note TEXT;
ALTER TABLE federation_partners ADD COLUMN checked_at BIGINT;
-- For a Convene partner: its listed Spaces at the last check, as a JSON array of
-- {"name", "url"} (names plain text), for the Network page's directory. NULL otherwise.
ALTER TABLE federation_partners ADD COLUMN public_spaces TEXT;
