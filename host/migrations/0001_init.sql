-- Bay schema v1. Portable SQL: it runs unchanged on SQLite and PostgreSQL.
-- Timestamps are BIGINT microseconds since the Unix epoch (UTC); booleans are
-- BIGINT 0/1 so both backends decode them the same way.

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL,
    key_prefix TEXT NOT NULL,
    owner TEXT NOT NULL,
    is_active BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    deactivated_at BIGINT
);
CREATE INDEX ix_api_keys_hash ON api_keys (key_hash);

CREATE TABLE cargos (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    backend TEXT NOT NULL,
    driver_ref TEXT NOT NULL,
    managed BIGINT NOT NULL,
    managed_by_sandbox_id TEXT,
    size_limit_mb BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    last_accessed_at BIGINT NOT NULL
);
CREATE INDEX ix_cargos_owner ON cargos (owner, id);

CREATE TABLE sandboxes (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    profile_id TEXT NOT NULL,
    cargo_id TEXT NOT NULL,
    current_session_id TEXT,
    expires_at BIGINT,
    idle_expires_at BIGINT,
    deleted_at BIGINT,
    version BIGINT NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL,
    last_active_at BIGINT NOT NULL,
    is_warm_pool BIGINT NOT NULL DEFAULT 0,
    warm_state TEXT,
    warm_ready_at BIGINT,
    warm_rotate_at BIGINT,
    warm_claimed_at BIGINT,
    warm_source_profile_id TEXT
);
CREATE INDEX ix_sandboxes_owner ON sandboxes (owner, id);
CREATE INDEX ix_sandboxes_cargo ON sandboxes (cargo_id);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    sandbox_id TEXT NOT NULL,
    runtime_type TEXT NOT NULL,
    profile_id TEXT NOT NULL,
    container_id TEXT,
    endpoint TEXT,
    containers TEXT,
    desired_state TEXT NOT NULL,
    observed_state TEXT NOT NULL,
    last_observed_at BIGINT,
    created_at BIGINT NOT NULL,
    last_active_at BIGINT NOT NULL
);
CREATE INDEX ix_sessions_sandbox ON sessions (sandbox_id);

CREATE TABLE execution_history (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    sandbox_id TEXT NOT NULL,
    session_id TEXT,
    exec_type TEXT NOT NULL,
    code TEXT NOT NULL,
    success BIGINT NOT NULL,
    execution_time_ms BIGINT NOT NULL,
    output TEXT,
    error TEXT,
    payload_ref TEXT,
    description TEXT,
    tags TEXT,
    notes TEXT,
    learn_enabled BIGINT NOT NULL DEFAULT 0,
    learn_status TEXT,
    learn_error TEXT,
    learn_processed_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX ix_history_sandbox ON execution_history (sandbox_id, created_at);

CREATE TABLE idempotency_keys (
    owner TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    request_fingerprint TEXT NOT NULL,
    response_snapshot TEXT,
    status_code BIGINT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (owner, idem_key)
);
CREATE INDEX ix_idempotency_expires ON idempotency_keys (expires_at);
