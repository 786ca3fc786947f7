-- Admission tickets (issue 9): a person with a Passport on another instance enters a Room here.
-- Their instance asks for a ticket, signed; the browser brings it to /enter, which spends it
-- (single use across restarts and processes) for a visitor session. Only a digest is kept, so
-- a copy of the database admits nobody.
CREATE TABLE admission_tickets (
    digest      TEXT   PRIMARY KEY,
    -- The remote Passport (a `passports` row with its instance's domain).
    passport_id BIGINT NOT NULL REFERENCES passports (id) ON DELETE CASCADE,
    room_id     BIGINT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX admission_tickets_expiry ON admission_tickets (expires_at);
