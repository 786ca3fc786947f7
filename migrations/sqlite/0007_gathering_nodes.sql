-- Which process holds each live gathering, when several `convene serve` processes share this
-- database: everyone in a Room must meet on one SFU. The first join claims the Room; the
-- holder renews its lease while people are inside; a join arriving at another process is
-- passed to the holder; when the holder dies, its lease runs out and the next join claims the
-- Room elsewhere.
CREATE TABLE gathering_nodes (
    room_id     BIGINT PRIMARY KEY REFERENCES rooms (id) ON DELETE CASCADE,
    -- A random id of the holding process, new at each start.
    node_id     TEXT   NOT NULL,
    -- Where the other processes reach the holder (`node_url`).
    node_url    TEXT   NOT NULL,
    lease_until BIGINT NOT NULL
);
