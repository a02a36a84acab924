//! `/`, `/health`, `/meta` and `DELETE /sessions/{id}`.

use axum::{
    Json,
    extract::{Path as UrlPath, State},
};
use serde_json::{Value, json};
use tracing::{info, warn};

use runtime_common::{error::AppError, skills::scan_skills};

use crate::{
    AppState,
    browser::binary_ok,
    config::{Config, is_executable},
    shared::{MAX_ID_LEN, valid_id},
};

pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");

pub(crate) async fn root() -> Json<Value> {
    Json(json!({"message": "Gull API is running"}))
}

/// Always 200 and never starts anything (the browser starts with the first
/// command). `healthy`: agent-browser and Chromium are both executable;
/// `degraded`: agent-browser is, Chromium is not; `unhealthy`: no
/// agent-browser. `browser_active`: the session's agent-browser daemon runs;
/// `browser_ready`: Chromium runs under it. In shared mode `session` is
/// `"shared"`, the two flags are about any sandbox's session, and the
/// status is `healthy` whenever agent-browser is there (as Shipyard Neo's
/// shared mode reports): browsers start per sandbox on demand, so the
/// container is fit to serve before any Chromium has started.
pub(crate) async fn health(State(st): State<AppState>) -> Json<Value> {
    let cfg = &st.cfg;
    let (status, browser) = if !binary_ok(&cfg.agent_browser) {
        ("unhealthy", Default::default())
    } else {
        let status = if cfg.shared.is_some() || is_executable(&cfg.chromium) { "healthy" } else { "degraded" };
        (status, st.browser.status())
    };
    Json(json!({
        "status": status,
        "browser_active": browser.active,
        "browser_ready": browser.ready,
        "session": if cfg.shared.is_some() { "shared" } else { cfg.session.as_str() },
        "version": VERSION,
    }))
}

pub(crate) async fn meta(State(st): State<AppState>) -> Json<Value> {
    Json(build_meta(&st.cfg))
}

pub(crate) fn build_meta(cfg: &Config) -> Value {
    json!({
        "runtime": {"name": "gull", "version": VERSION, "api_version": "v1"},
        "workspace": {"mount_path": cfg.workspace.to_string_lossy()},
        "capabilities": {"browser": {"version": "1.0"}},
        "built_in_skills": scan_skills(&cfg.skills_dir, &cfg.workspace),
    })
}

/// Closes the browser of that session (its daemon, Chromium; in shared mode
/// also its home directory). Shipyard answers `destroyed: true` whatever
/// happened; so does Gull. The id names files in the socket directory, so
/// only the sandbox id alphabet is accepted (400 otherwise).
pub(crate) async fn delete_session(State(st): State<AppState>, UrlPath(sandbox_id): UrlPath<String>) -> Result<Json<Value>, AppError> {
    if !valid_id(&sandbox_id) {
        return Err(AppError::bad_request(format!("Invalid sandbox_id: use 1 to {MAX_ID_LEN} characters of A-Z, a-z, 0-9, `_` and `-`")));
    }
    let out = st.browser.close(&sandbox_id).await;
    if out.exit_code != 0 {
        warn!(session = %sandbox_id, exit_code = out.exit_code, stderr = %out.stderr.trim(), "close failed");
    } else {
        info!(session = %sandbox_id, "session closed");
    }
    Ok(Json(json!({"sandbox_id": sandbox_id, "destroyed": true})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skills_listing_and_meta() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("browser-automation")).unwrap();
        std::fs::write(d.path().join("browser-automation/SKILL.md"), "---\nname: browser-automation\ndescription: \"Drive: a browser\"\n---\n# x\n")
            .unwrap();
        std::fs::create_dir_all(d.path().join("empty")).unwrap();
        let vars = [("GULL_SKILLS_DIR", d.path().to_string_lossy().into_owned())];
        let cfg = Config::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())).unwrap();
        let m = build_meta(&cfg);
        assert_eq!(m["runtime"], json!({"name": "gull", "version": VERSION, "api_version": "v1"}));
        assert_eq!(m["workspace"]["mount_path"], "/workspace");
        assert_eq!(m["capabilities"], json!({"browser": {"version": "1.0"}}));
        assert_eq!(
            m["built_in_skills"],
            json!([{
                "name": "browser-automation",
                "description": "Drive: a browser",
                "path": "/workspace/skills/browser-automation/SKILL.md",
            }])
        );
    }
}
