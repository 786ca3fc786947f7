-- Passports of other instances that this instance's operators blocked, by address: they get no
-- tickets, no visitor sessions and no memberships here, whether or not they came before.
CREATE TABLE blocked_passports (
    -- Lower case, as addresses compare.
    handle     TEXT   NOT NULL,
    domain     TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (handle, domain)
);
