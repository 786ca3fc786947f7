-- Governance (SQLite): the Circle of Stewards, worker roles, elections with secret ballots,
-- motions, the Budget and the Objectives. Same conventions as 0001: unix-second BIGINT times,
-- 0/1 flags.

-- The Circle's standing settings: one row. Seats are per constituency, so the Circle always has
-- as many Resident as Worker seats; the Budget's shares are whole percentages; the Objectives
-- are one per line.
CREATE TABLE circle_settings (
    id                      INTEGER PRIMARY KEY CHECK (id = 1),
    seats_per_constituency  BIGINT NOT NULL DEFAULT 3,
    term_seconds            BIGINT NOT NULL DEFAULT 63072000,
    min_account_age_seconds BIGINT NOT NULL DEFAULT 0,
    budget_infrastructure   BIGINT NOT NULL DEFAULT 33,
    budget_operations       BIGINT NOT NULL DEFAULT 33,
    budget_patronage        BIGINT NOT NULL DEFAULT 33,
    objectives              TEXT   NOT NULL DEFAULT ''
);
INSERT INTO circle_settings (id) VALUES (1);

-- Every change of a Passport's worker_role, with who made it: the Worker roll's audit log.
CREATE TABLE worker_role_log (
    id          INTEGER PRIMARY KEY,
    passport_id BIGINT NOT NULL REFERENCES passports (id) ON DELETE CASCADE,
    old_role    TEXT,
    new_role    TEXT,
    changed_by  BIGINT REFERENCES passports (id) ON DELETE SET NULL,
    reason      TEXT   NOT NULL DEFAULT '',
    at          BIGINT NOT NULL
);

-- The seats of the Circle. There are always seats_per_constituency rows per constituency
-- ('resident' or 'worker'); a vacant seat has no holder. The code changes these rows only
-- through the governance crate's Circle, which refuses anything that would unbalance it.
CREATE TABLE circle_seats (
    constituency TEXT   NOT NULL,
    seat_no      BIGINT NOT NULL,
    passport_id  BIGINT REFERENCES passports (id) ON DELETE SET NULL,
    election_id  BIGINT,
    term_start   BIGINT,
    term_end     BIGINT,
    PRIMARY KEY (constituency, seat_no)
);
CREATE UNIQUE INDEX circle_seats_holder ON circle_seats (passport_id) WHERE passport_id IS NOT NULL;
INSERT INTO circle_seats (constituency, seat_no) VALUES
    ('resident', 0), ('resident', 1), ('resident', 2),
    ('worker', 0), ('worker', 1), ('worker', 2);

-- An election. Its phase follows from the four window times and closed_at. The seed of the
-- lot is drawn and shown when voting opens, before any ballot is counted (decimal text: it is
-- a full 64-bit number). The result is the governance crate's Outcome as JSON and as text.
CREATE TABLE elections (
    id                   INTEGER PRIMARY KEY,
    title                TEXT   NOT NULL,
    constituency         TEXT   NOT NULL,
    seats                BIGINT NOT NULL,
    method               TEXT   NOT NULL,
    nominations_open_at  BIGINT NOT NULL,
    nominations_close_at BIGINT NOT NULL,
    voting_open_at       BIGINT NOT NULL,
    voting_close_at      BIGINT NOT NULL,
    -- Minimum turnout in percent of the roll; 0 means no quorum.
    quorum_percent       BIGINT NOT NULL DEFAULT 0,
    -- A countback or by-election fills vacancies only; a regular election renews seats.
    by_election          INTEGER NOT NULL DEFAULT 0,
    seed                 TEXT,
    roll_frozen_at       BIGINT,
    roll_size            BIGINT NOT NULL DEFAULT 0,
    ballots_cast         BIGINT NOT NULL DEFAULT 0,
    closed_at            BIGINT,
    quorum_met           INTEGER,
    result_json          TEXT,
    result_text          TEXT,
    result_error         TEXT,
    -- When each notice went out, so a notice is queued once.
    nominations_notice_at BIGINT,
    candidates_notice_at  BIGINT,
    auto_reminder_at      BIGINT,
    created_by           BIGINT REFERENCES passports (id) ON DELETE SET NULL,
    created_at           BIGINT NOT NULL
);

-- Nominations: by the candidate themself (accepted at once) or by another voter (the
-- candidate accepts). ballot_number is the candidate's number on the ballot and in the BLT
-- file, given when voting opens.
CREATE TABLE nominations (
    id            INTEGER PRIMARY KEY,
    election_id   BIGINT NOT NULL REFERENCES elections (id) ON DELETE CASCADE,
    candidate_id  BIGINT NOT NULL REFERENCES passports (id) ON DELETE CASCADE,
    nominated_by  BIGINT REFERENCES passports (id) ON DELETE SET NULL,
    statement     TEXT   NOT NULL DEFAULT '',
    accepted_at   BIGINT,
    withdrawn_at  BIGINT,
    ballot_number BIGINT,
    created_at    BIGINT NOT NULL,
    UNIQUE (election_id, candidate_id)
);

-- The roll, frozen when voting opens: who may vote, where their ballot link went, and only
-- the hash of the link's secret. `voted` is a bare flag with no time, so nothing here can be
-- lined up against the ballots.
CREATE TABLE election_roll (
    election_id BIGINT  NOT NULL REFERENCES elections (id) ON DELETE CASCADE,
    passport_id BIGINT  NOT NULL REFERENCES passports (id) ON DELETE CASCADE,
    email       TEXT    NOT NULL,
    token_hash  TEXT    NOT NULL UNIQUE,
    voted       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (election_id, passport_id)
);

-- Secret ballots. No voter, no time, no sequence: the key is the random receipt the voter
-- was shown, and WITHOUT ROWID stores the rows in receipt order, so not even the order of
-- insertion survives. `ranking` holds ballot numbers in order of preference, space-separated
-- (approval: the approved numbers, ascending); '' is a blank ballot.
CREATE TABLE ballots (
    election_id BIGINT NOT NULL REFERENCES elections (id) ON DELETE CASCADE,
    receipt     TEXT   NOT NULL,
    ranking     TEXT   NOT NULL,
    PRIMARY KEY (election_id, receipt)
) WITHOUT ROWID;

-- Motions of the Circle: a new Budget or new Objectives. Decided by double majority of seats.
CREATE TABLE motions (
    id                    INTEGER PRIMARY KEY,
    kind                  TEXT   NOT NULL,
    title                 TEXT   NOT NULL,
    budget_infrastructure BIGINT,
    budget_operations     BIGINT,
    budget_patronage      BIGINT,
    objectives            TEXT,
    proposed_by           BIGINT REFERENCES passports (id) ON DELETE SET NULL,
    created_at            BIGINT NOT NULL,
    decided_at            BIGINT,
    passed                INTEGER,
    decision_json         TEXT
);

-- Stewards' votes on motions are public: the Circle answers to the instance.
CREATE TABLE motion_votes (
    motion_id    BIGINT NOT NULL REFERENCES motions (id) ON DELETE CASCADE,
    passport_id  BIGINT NOT NULL REFERENCES passports (id) ON DELETE CASCADE,
    constituency TEXT   NOT NULL,
    position     TEXT   NOT NULL,
    at           BIGINT NOT NULL,
    PRIMARY KEY (motion_id, passport_id)
);

CREATE INDEX email_outbox_kind ON email_outbox (kind);
