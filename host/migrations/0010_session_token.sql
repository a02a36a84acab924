-- The per-session secret a runtime requires on every call (X-Bay-Token):
-- generated when the session starts, kept so a restarted Bay can adopt it.
ALTER TABLE sessions ADD COLUMN runtime_token TEXT;
