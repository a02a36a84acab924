-- API key roles (docs/security.md, "Authentication and roles"): a
-- comma-separated list of scopes (`admin`, `user`) and an optional name.
-- Every key stored before this migration was provisioned from the
-- configuration, the environment or first boot: those are administrators.
ALTER TABLE api_keys ADD COLUMN scopes TEXT NOT NULL DEFAULT 'admin';
ALTER TABLE api_keys ADD COLUMN name TEXT;
