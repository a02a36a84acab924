//! Self-description endpoints: `/`, `/health`, `/stat`, `/meta`.

use axum::{Json, extract::State};
use serde_json::{Value, json};

use runtime_common::skills::scan_skills;

use crate::{AppState, config::Config};

pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");

pub(crate) async fn root() -> Json<Value> {
    Json(json!({"message": "Ship API is running"}))
}

/// Answers as soon as the server listens; the kernel warms up in the
/// background and has its own status endpoint.
pub(crate) async fn health() -> Json<Value> {
    Json(json!({"status": "healthy", "version": VERSION}))
}

pub(crate) async fn stat() -> Json<Value> {
    Json(json!({"service": "ship", "version": VERSION, "status": "running", "author": "Bay"}))
}

pub(crate) async fn meta(State(st): State<AppState>) -> Json<Value> {
    Json(build_meta(&st.cfg))
}

pub(crate) fn build_meta(cfg: &Config) -> Value {
    json!({
        "runtime": {
            "name": "ship",
            "version": VERSION,
            "api_version": "v1",
            "build": {"image": cfg.image, "image_digest": null, "git_sha": null},
        },
        "workspace": {"mount_path": cfg.workspace.to_string_lossy()},
        "capabilities": {
            "filesystem": {
                "operations": ["create", "read", "write", "edit", "delete", "list", "upload", "download"],
                "path_mode": "relative_to_mount",
                "endpoints": {
                    "create": "/fs/create_file",
                    "read": "/fs/read_file",
                    "write": "/fs/write_file",
                    "edit": "/fs/edit_file",
                    "delete": "/fs/delete_file",
                    "list": "/fs/list_dir",
                    "upload": "/fs/upload",
                    "download": "/fs/download",
                },
            },
            "shell": {
                // Shipyard Neo's two, then Bay's live exec (`stream.rs`).
                "operations": ["exec", "processes", "stream", "live_processes"],
                "endpoints": {
                    "exec": "/shell/exec",
                    "processes": "/shell/processes",
                    "stream": "/shell/exec/stream",
                    "live_processes": "/processes",
                },
            },
            "python": {
                "operations": ["exec"],
                "engine": "ipython",
                "endpoints": {"exec": "/ipython/exec"},
            },
            "terminal": {
                "operations": ["ws"],
                "protocol": "websocket",
                "endpoints": {"ws": "/term/ws"},
            },
        },
        "built_in_skills": scan_skills(&cfg.skills_dir, &cfg.workspace),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertises_live_exec() {
        let m = build_meta(&Config::from_lookup(|_| None));
        let caps = &m["capabilities"];
        assert_eq!(caps["terminal"], json!({"operations": ["ws"], "protocol": "websocket", "endpoints": {"ws": "/term/ws"}}));
        assert_eq!(caps["shell"]["operations"], json!(["exec", "processes", "stream", "live_processes"]));
        // Shipyard Neo's two keep their endpoints.
        assert_eq!(caps["shell"]["endpoints"]["exec"], "/shell/exec");
        assert_eq!(caps["shell"]["endpoints"]["processes"], "/shell/processes");
        assert_eq!(caps["shell"]["endpoints"]["stream"], "/shell/exec/stream");
        assert_eq!(caps["shell"]["endpoints"]["live_processes"], "/processes");
    }
}
