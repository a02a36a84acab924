-- A Shipyard Neo database (reference §3.1) as SQLModel creates it on SQLite:
-- DATETIME columns hold naive UTC text, BOOLEAN columns 0/1, enums their
-- SQLAlchemy names or values. A few rows per table, with the awkward cases:
-- a soft-deleted sandbox (and its managed cargo), a warm-pool sandbox, a
-- history row whose sandbox is missing, an evaluation whose candidate is
-- missing, an inactive key. Python's sqlite3 does not enforce foreign keys
-- (so a sandbox can name a cargo that is gone); sqlx does unless told.
PRAGMA foreign_keys = OFF;

CREATE TABLE cargos (
    id VARCHAR NOT NULL PRIMARY KEY,
    owner VARCHAR NOT NULL,
    backend VARCHAR NOT NULL,
    driver_ref VARCHAR NOT NULL,
    managed BOOLEAN NOT NULL,
    managed_by_sandbox_id VARCHAR,
    size_limit_mb INTEGER NOT NULL,
    created_at DATETIME NOT NULL,
    last_accessed_at DATETIME NOT NULL
);
CREATE TABLE sandboxes (
    id VARCHAR NOT NULL PRIMARY KEY,
    owner VARCHAR NOT NULL,
    profile_id VARCHAR NOT NULL,
    cargo_id VARCHAR REFERENCES cargos (id),
    current_session_id VARCHAR,
    expires_at DATETIME,
    idle_expires_at DATETIME,
    deleted_at DATETIME,
    version INTEGER NOT NULL,
    created_at DATETIME NOT NULL,
    last_active_at DATETIME NOT NULL,
    is_warm_pool BOOLEAN NOT NULL,
    warm_state VARCHAR,
    warm_ready_at DATETIME,
    warm_rotate_at DATETIME,
    warm_claimed_at DATETIME,
    warm_source_profile_id VARCHAR
);
CREATE TABLE sessions (
    id VARCHAR NOT NULL PRIMARY KEY,
    sandbox_id VARCHAR NOT NULL REFERENCES sandboxes (id),
    runtime_type VARCHAR NOT NULL,
    profile_id VARCHAR NOT NULL,
    container_id VARCHAR,
    endpoint VARCHAR,
    containers JSON,
    desired_state VARCHAR(8) NOT NULL,
    observed_state VARCHAR(8) NOT NULL,
    last_observed_at DATETIME,
    created_at DATETIME NOT NULL,
    last_active_at DATETIME NOT NULL
);
CREATE TABLE api_keys (
    id VARCHAR NOT NULL PRIMARY KEY,
    key_hash VARCHAR NOT NULL,
    key_prefix VARCHAR NOT NULL,
    owner VARCHAR NOT NULL,
    is_active BOOLEAN NOT NULL,
    created_at DATETIME NOT NULL,
    deactivated_at DATETIME
);
CREATE TABLE idempotency_keys (
    owner VARCHAR NOT NULL,
    key VARCHAR NOT NULL,
    request_fingerprint VARCHAR NOT NULL,
    response_snapshot VARCHAR,
    status_code INTEGER,
    created_at DATETIME NOT NULL,
    expires_at DATETIME NOT NULL,
    PRIMARY KEY (owner, key)
);
CREATE TABLE execution_history (
    id VARCHAR NOT NULL PRIMARY KEY,
    owner VARCHAR NOT NULL,
    sandbox_id VARCHAR NOT NULL,
    session_id VARCHAR,
    exec_type VARCHAR NOT NULL,
    code VARCHAR NOT NULL,
    success BOOLEAN NOT NULL,
    execution_time_ms INTEGER NOT NULL,
    output VARCHAR,
    error VARCHAR,
    payload_ref VARCHAR,
    description VARCHAR,
    tags VARCHAR,
    notes VARCHAR,
    learn_enabled BOOLEAN NOT NULL,
    learn_status VARCHAR,
    learn_error VARCHAR,
    learn_processed_at DATETIME,
    created_at DATETIME NOT NULL
);
CREATE TABLE artifact_blobs (
    id VARCHAR NOT NULL PRIMARY KEY,
    owner VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    payload_json VARCHAR NOT NULL,
    created_at DATETIME NOT NULL
);
CREATE TABLE skill_candidates (
    id VARCHAR NOT NULL PRIMARY KEY,
    owner VARCHAR NOT NULL,
    skill_key VARCHAR NOT NULL,
    scenario_key VARCHAR,
    payload_ref VARCHAR,
    skill_type VARCHAR NOT NULL,
    auto_release_eligible BOOLEAN NOT NULL,
    auto_release_reason VARCHAR,
    summary VARCHAR,
    usage_notes VARCHAR,
    preconditions_json VARCHAR,
    postconditions_json VARCHAR,
    source_execution_ids VARCHAR NOT NULL,
    status VARCHAR(15) NOT NULL,
    latest_score FLOAT,
    latest_pass BOOLEAN,
    last_evaluated_at DATETIME,
    promotion_release_id VARCHAR,
    created_by VARCHAR,
    created_at DATETIME NOT NULL,
    updated_at DATETIME NOT NULL,
    is_deleted BOOLEAN NOT NULL,
    deleted_at DATETIME,
    deleted_by VARCHAR,
    delete_reason VARCHAR
);
CREATE TABLE skill_evaluations (
    id VARCHAR NOT NULL PRIMARY KEY,
    owner VARCHAR NOT NULL,
    candidate_id VARCHAR NOT NULL,
    benchmark_id VARCHAR,
    score FLOAT,
    passed BOOLEAN NOT NULL,
    report VARCHAR,
    evaluated_by VARCHAR,
    created_at DATETIME NOT NULL
);
CREATE TABLE skill_releases (
    id VARCHAR NOT NULL PRIMARY KEY,
    owner VARCHAR NOT NULL,
    skill_key VARCHAR NOT NULL,
    candidate_id VARCHAR NOT NULL,
    version INTEGER NOT NULL,
    stage VARCHAR(6) NOT NULL,
    is_active BOOLEAN NOT NULL,
    release_mode VARCHAR(6) NOT NULL,
    promoted_by VARCHAR,
    promoted_at DATETIME NOT NULL,
    rollback_of VARCHAR,
    auto_promoted_from VARCHAR,
    health_window_end_at DATETIME,
    upgrade_of_release_id VARCHAR,
    upgrade_reason VARCHAR,
    change_summary VARCHAR,
    is_deleted BOOLEAN NOT NULL,
    deleted_at DATETIME,
    deleted_by VARCHAR,
    delete_reason VARCHAR
);

-- Keys: sha256("sk-bay-alpha") active; sha256("sk-bay-beta") revoked.
INSERT INTO api_keys VALUES ('6f1c0e0a-0000-4000-8000-000000000001', '3bb89daae446552a2cb82af6314f866485a9050bab05653fa9c65fc71a24623b', 'sk-bay-alpha', 'default', 1, '2026-01-01 09:00:00', NULL);
INSERT INTO api_keys VALUES ('6f1c0e0a-0000-4000-8000-000000000002', 'a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2', 'sk-bay-beta-', 'default', 0, '2026-01-02 09:00:00.5', '2026-01-03 10:00:00');

-- ws-aaaaaaaaaaaa: managed by the live sandbox; ws-bbbbbbbbbbbb: external;
-- ws-cccccccccccc: managed by the deleted sandbox; ws-dddddddddddd: the warm one's.
INSERT INTO cargos VALUES ('ws-aaaaaaaaaaaa', 'default', 'docker_volume', 'bay-cargo-ws-aaaaaaaaaaaa', 1, 'sandbox-aaaaaaaaaaaa', 1024, '2026-01-10 12:00:00.250000', '2026-01-11 08:30:00');
INSERT INTO cargos VALUES ('ws-bbbbbbbbbbbb', 'alice', 'docker_volume', 'bay-cargo-ws-bbbbbbbbbbbb', 0, NULL, 2048, '2026-01-10 12:00:01', '2026-01-10 12:00:01');
INSERT INTO cargos VALUES ('ws-cccccccccccc', 'default', 'docker_volume', 'bay-cargo-ws-cccccccccccc', 1, 'sandbox-cccccccccccc', 1024, '2026-01-10 12:00:02', '2026-01-10 12:00:02');
INSERT INTO cargos VALUES ('ws-dddddddddddd', 'warm-pool', 'docker_volume', 'bay-cargo-ws-dddddddddddd', 1, 'sandbox-dddddddddddd', 1024, '2026-01-10 12:00:03', '2026-01-10 12:00:03');

INSERT INTO sandboxes VALUES ('sandbox-aaaaaaaaaaaa', 'default', 'python-default', 'ws-aaaaaaaaaaaa', 'sess-aaaaaaaaaaaa', NULL, '2026-01-11 09:00:00', NULL, 1, '2026-01-10 12:00:00.250000', '2026-01-11 08:30:00', 0, NULL, NULL, NULL, NULL, NULL);
INSERT INTO sandboxes VALUES ('sandbox-bbbbbbbbbbbb', 'alice', 'python-default', 'ws-bbbbbbbbbbbb', NULL, '2099-01-01 00:00:00', NULL, NULL, 1, '2026-01-10 12:00:05', '2026-01-10 12:00:05', 0, 'claimed', '2026-01-10 11:00:00', '2026-01-10 11:30:00', '2026-01-10 12:00:05', NULL);
INSERT INTO sandboxes VALUES ('sandbox-cccccccccccc', 'default', 'python-default', 'ws-cccccccccccc', NULL, NULL, NULL, '2026-01-12 00:00:00', 1, '2026-01-10 12:00:02', '2026-01-10 12:00:02', 0, NULL, NULL, NULL, NULL, NULL);
INSERT INTO sandboxes VALUES ('sandbox-dddddddddddd', 'warm-pool', 'python-default', 'ws-dddddddddddd', NULL, NULL, NULL, NULL, 1, '2026-01-10 12:00:03', '2026-01-10 12:00:03', 1, 'available', '2026-01-10 12:00:04', '2026-01-10 12:30:04', NULL, NULL);
-- Its cargo was never recorded.
INSERT INTO sandboxes VALUES ('sandbox-eeeeeeeeeeee', 'default', 'python-default', 'ws-eeeeeeeeeeee', NULL, NULL, NULL, NULL, 1, '2026-01-10 12:00:06', '2026-01-10 12:00:06', 0, NULL, NULL, NULL, NULL, NULL);

INSERT INTO sessions VALUES ('sess-aaaaaaaaaaaa', 'sandbox-aaaaaaaaaaaa', 'ship', 'python-default', 'c0ffee', 'http://10.0.0.2:8123', NULL, 'RUNNING', 'RUNNING', '2026-01-11 08:30:00', '2026-01-11 08:00:00', '2026-01-11 08:30:00');

INSERT INTO execution_history VALUES ('exec-aaaaaaaaaaa1', 'default', 'sandbox-aaaaaaaaaaaa', 'sess-aaaaaaaaaaaa', 'PYTHON', 'print(1)', 1, 12, '1' || char(10), NULL, NULL, 'first', 'b, a', NULL, 0, NULL, NULL, NULL, '2026-01-11 08:10:00.000100');
INSERT INTO execution_history VALUES ('exec-aaaaaaaaaaa2', 'default', 'sandbox-aaaaaaaaaaaa', 'sess-aaaaaaaaaaaa', 'shell', 'false', 0, 3, '', 'exit 1', NULL, NULL, NULL, 'n', 0, NULL, NULL, NULL, '2026-01-11 08:11:00');
-- The deleted sandbox's history is kept.
INSERT INTO execution_history VALUES ('exec-cccccccccccc', 'default', 'sandbox-cccccccccccc', NULL, 'browser', 'open x', 1, 40, 'ok', NULL, 'blob:blob-aaaaaaaaaaaa', NULL, 'release:sr-aaaaaaaaaaaa', NULL, 1, 'processed', NULL, '2026-01-11 09:00:00', '2026-01-11 08:12:00');
-- No such sandbox.
INSERT INTO execution_history VALUES ('exec-ffffffffffff', 'default', 'sandbox-ffffffffffff', NULL, 'python', 'x', 1, 1, NULL, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL, '2026-01-11 08:13:00');

INSERT INTO artifact_blobs VALUES ('blob-aaaaaaaaaaaa', 'default', 'browser_trace', '{"steps":[{"cmd":"open x"}]}', '2026-01-11 08:12:00');

INSERT INTO skill_candidates VALUES ('sc-aaaaaaaaaaaa', 'default', 'open-page', 'smoke', 'blob:blob-aaaaaaaaaaaa', 'BROWSER', 1, 'replay ok', 'opens a page', NULL, '{"url":"x"}', NULL, 'exec-cccccccccccc,exec-aaaaaaaaaaa1', 'PROMOTED_CANARY', 0.9, 1, '2026-01-11 10:00:00', 'sr-aaaaaaaaaaaa', 'system:auto', '2026-01-11 09:30:00', '2026-01-11 10:05:00', 0, NULL, NULL, NULL);
INSERT INTO skill_candidates VALUES ('sc-bbbbbbbbbbbb', 'alice', 'k', NULL, NULL, 'code', 0, NULL, NULL, NULL, NULL, NULL, 'exec-aaaaaaaaaaa2', 'rejected', 0.1, 0, '2026-01-11 10:00:00', NULL, 'alice', '2026-01-11 09:40:00', '2026-01-11 10:00:00', 1, '2026-01-12 00:00:00', 'alice', 'bad');

INSERT INTO skill_evaluations VALUES ('se-aaaaaaaaaaaa', 'default', 'sc-aaaaaaaaaaaa', 'bench-1', 0.9, 1, '{"replay_success":1.0}', 'default', '2026-01-11 10:00:00');
INSERT INTO skill_evaluations VALUES ('se-ffffffffffff', 'default', 'sc-ffffffffffff', NULL, NULL, 0, NULL, 'default', '2026-01-11 10:01:00');

INSERT INTO skill_releases VALUES ('sr-aaaaaaaaaaaa', 'default', 'open-page', 'sc-aaaaaaaaaaaa', 1, 'CANARY', 1, 'AUTO', 'system:auto', '2026-01-11 10:05:00', NULL, 'sc-aaaaaaaaaaaa', '2026-01-12 10:05:00', NULL, NULL, 'first', 0, NULL, NULL, NULL);
