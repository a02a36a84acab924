-- Skills control plane (reference §1.9, §3.1): artifact blobs, skill
-- candidates, their evaluations and releases. Portable SQL (SQLite and
-- PostgreSQL): timestamps BIGINT microseconds, booleans BIGINT 0/1, JSON as TEXT.

CREATE TABLE artifact_blobs (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload_json TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX ix_artifact_blobs_owner ON artifact_blobs (owner, id);

CREATE TABLE skill_candidates (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    skill_key TEXT NOT NULL,
    scenario_key TEXT,
    payload_ref TEXT,
    skill_type TEXT NOT NULL DEFAULT 'code',
    auto_release_eligible BIGINT NOT NULL DEFAULT 0,
    auto_release_reason TEXT,
    summary TEXT,
    usage_notes TEXT,
    preconditions_json TEXT,
    postconditions_json TEXT,
    -- comma-joined execution ids
    source_execution_ids TEXT NOT NULL,
    status TEXT NOT NULL,
    latest_score DOUBLE PRECISION,
    latest_pass BIGINT,
    last_evaluated_at BIGINT,
    promotion_release_id TEXT,
    created_by TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    is_deleted BIGINT NOT NULL DEFAULT 0,
    deleted_at BIGINT,
    deleted_by TEXT,
    delete_reason TEXT
);
CREATE INDEX ix_skill_candidates_owner ON skill_candidates (owner, created_at);
CREATE INDEX ix_skill_candidates_key ON skill_candidates (owner, skill_key);
CREATE INDEX ix_skill_candidates_release ON skill_candidates (promotion_release_id);

CREATE TABLE skill_evaluations (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    candidate_id TEXT NOT NULL,
    benchmark_id TEXT,
    score DOUBLE PRECISION,
    passed BIGINT NOT NULL,
    report TEXT,
    evaluated_by TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX ix_skill_evaluations_candidate ON skill_evaluations (owner, candidate_id, created_at);

CREATE TABLE skill_releases (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    skill_key TEXT NOT NULL,
    candidate_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    stage TEXT NOT NULL,
    is_active BIGINT NOT NULL,
    release_mode TEXT NOT NULL DEFAULT 'manual',
    promoted_by TEXT,
    promoted_at BIGINT NOT NULL,
    rollback_of TEXT,
    auto_promoted_from TEXT,
    health_window_end_at BIGINT,
    upgrade_of_release_id TEXT,
    upgrade_reason TEXT,
    change_summary TEXT,
    is_deleted BIGINT NOT NULL DEFAULT 0,
    deleted_at BIGINT,
    deleted_by TEXT,
    delete_reason TEXT
);
-- Versions are max+1 per owner and skill_key (never reused, deleted rows included).
CREATE UNIQUE INDEX ux_skill_releases_version ON skill_releases (owner, skill_key, version);
CREATE INDEX ix_skill_releases_owner ON skill_releases (owner, promoted_at);
CREATE INDEX ix_skill_releases_candidate ON skill_releases (owner, candidate_id);

-- Release health scans an owner's history by time (tags are matched per row).
CREATE INDEX ix_execution_history_owner_time ON execution_history (owner, created_at);
