-- Membership across instances (issue 9), in ActivityPub.
--
-- Here as the Room's instance: a Passport of another instance asked (`Join`) to become a
-- member of the Space of a members-only Room; its owners decide on the Space's members page.
CREATE TABLE join_requests (
    id          INTEGER PRIMARY KEY,
    space_id    BIGINT NOT NULL REFERENCES spaces (id) ON DELETE CASCADE,
    room_id     BIGINT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    -- The remote Passport (a `passports` row with its instance's domain).
    passport_id BIGINT NOT NULL REFERENCES passports (id) ON DELETE CASCADE,
    join_id     TEXT   NOT NULL,
    -- Where the answer goes.
    inbox       TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (space_id, passport_id)
);

-- Here as the Passport's home: Rooms elsewhere this instance's people asked to join, and
-- what those Rooms' instances answered.
CREATE TABLE memberships_elsewhere (
    passport_id BIGINT NOT NULL REFERENCES passports (id) ON DELETE CASCADE,
    -- The Room's actor id, and its name when asked.
    room        TEXT   NOT NULL,
    room_name   TEXT   NOT NULL,
    join_id     TEXT   NOT NULL UNIQUE,
    -- 'asked', 'waiting' (TentativeAccept), 'accepted' or 'rejected'.
    state       TEXT   NOT NULL,
    reason      TEXT,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (passport_id, room)
);

-- Here as the Space's instance: Passports of other instances its owners invited (`Invite`),
-- until they answer.
CREATE TABLE remote_invitations (
    invite_id   TEXT   PRIMARY KEY,
    space_id    BIGINT NOT NULL REFERENCES spaces (id) ON DELETE CASCADE,
    passport_id BIGINT NOT NULL REFERENCES passports (id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL
);

-- Here as the Passport's home: invitations to Spaces elsewhere, until answered.
CREATE TABLE invitations_elsewhere (
    invite_id   TEXT   PRIMARY KEY,
    passport_id BIGINT NOT NULL REFERENCES passports (id) ON DELETE CASCADE,
    -- The inviting Space's actor id, name and inbox.
    space       TEXT   NOT NULL,
    space_name  TEXT   NOT NULL,
    inbox       TEXT   NOT NULL,
    created_at  BIGINT NOT NULL
);
