-- Leases shared by several Bay replicas on one database: per-sandbox
-- mutual exclusion (`sandbox:<id>`) and the background-work leader
-- (`leader`). A lease is held until `expires_at` (µs since the epoch) unless
-- renewed; a replica that dies loses its leases when they expire.
CREATE TABLE leases (
    lease_key TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
