-- Every media token the instance issues, so that access is checked again at the SFU's door
-- and while people are inside: a token is single use across restarts and across processes
-- sharing the database, and a change of a Room's access (or a removed member) ends the media
-- of whoever lost it, whichever process or `convene admin` made the change.
CREATE TABLE media_grants (
    -- The token's random nonce.
    nonce        TEXT   PRIMARY KEY,
    room_id      BIGINT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    -- The SFU's participant id (`p{passport}` or `g{session}`).
    participant  TEXT   NOT NULL,
    -- The Passport the token was issued to; NULL for guests.
    passport_id  BIGINT REFERENCES passports (id) ON DELETE CASCADE,
    -- The browser session it was issued in (a locked Room's unlock belongs to a session).
    session_hash TEXT,
    -- Who asked (`ip:ADDRESS`), for the guests' per-client limit.
    client_key   TEXT   NOT NULL,
    issued_at    BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    -- When the token was spent at the door; NULL until then.
    used_at      BIGINT
);
CREATE INDEX media_grants_participant ON media_grants (room_id, participant, issued_at);
CREATE INDEX media_grants_client ON media_grants (client_key, issued_at);
