-- Warm pool: the hash of the environment a warm sandbox's runtime was started
-- with, so a claim never hands out a runtime started with stale profile env.
ALTER TABLE sandboxes ADD COLUMN warm_env_hash TEXT;
CREATE INDEX ix_sandboxes_warm ON sandboxes (is_warm_pool, warm_state, profile_id);
