-- Secrets every replica must share, created once by whichever starts first
-- (the key that signs port-preview tokens: host/src/preview.rs).
CREATE TABLE IF NOT EXISTS server_secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
