-- Every sign-in or sign-up mail the instance sends, whether or not a Passport uses the
-- address, so that limits per address, per client and for the whole instance answer every
-- address alike (no account discovery) and nobody can make the instance mail-bomb an inbox.
CREATE TABLE sign_in_mails (
    email      TEXT   NOT NULL,
    client_key TEXT   NOT NULL,
    sent_at    BIGINT NOT NULL
);
CREATE INDEX sign_in_mails_email ON sign_in_mails (email, sent_at);
CREATE INDEX sign_in_mails_client ON sign_in_mails (client_key, sent_at);
CREATE INDEX sign_in_mails_sent ON sign_in_mails (sent_at);
