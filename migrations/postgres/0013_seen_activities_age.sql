-- Activity ids are kept for a limited time (see `core::followers::sweep_seen`); housekeeping
-- deletes the oldest by this index instead of reading the whole table.
CREATE INDEX federation_seen_activities_received ON federation_seen_activities (received_at);
