//! Self-description endpoints: `/`, `/health`, `/stat`, `/meta`.

use std::path::Path;

use axum::{Json, extract::State};
use serde_json::{Value, json};

use crate::{AppState, config::Config};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub async fn root() -> Json<Value> {
    Json(json!({"message": "Ship API is running"}))
}

/// Answers as soon as the server listens; the kernel warms up in the
/// background and has its own status endpoint.
pub async fn health() -> Json<Value> {
    Json(json!({"status": "healthy", "version": VERSION}))
}

pub async fn stat() -> Json<Value> {
    Json(json!({"service": "ship", "version": VERSION, "status": "running", "author": "Bay"}))
}

pub async fn meta(State(st): State<AppState>) -> Json<Value> {
    Json(build_meta(&st.cfg))
}

pub fn build_meta(cfg: &Config) -> Value {
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
                "operations": ["exec", "processes"],
                "endpoints": {"exec": "/shell/exec", "processes": "/shell/processes"},
            },
            "python": {
                "operations": ["exec"],
                "engine": "ipython",
                "endpoints": {"exec": "/ipython/exec"},
            },
            // No "terminal": the websocket PTY is not implemented.
        },
        "built_in_skills": scan_skills(&cfg.skills_dir, &cfg.workspace),
    })
}

/// Built-in skills with name/description from SKILL.md front matter. The
/// reported path is the copy in the workspace (what the agent can open
/// through the filesystem API), not the read-only source in the image.
pub fn scan_skills(skills_dir: &Path, workspace: &Path) -> Vec<Value> {
    let Ok(rd) = std::fs::read_dir(skills_dir) else {
        return Vec::new();
    };
    let mut dirs: Vec<_> =
        rd.flatten().filter(|e| e.path().join("SKILL.md").is_file()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    dirs.sort();
    dirs.into_iter()
        .map(|dir| {
            let text = std::fs::read_to_string(skills_dir.join(&dir).join("SKILL.md")).unwrap_or_default();
            let fm = front_matter(&text);
            let get = |k: &str| fm.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
            json!({
                "name": get("name").unwrap_or_else(|| dir.clone()),
                "description": get("description").unwrap_or_default(),
                "path": workspace.join("skills").join(&dir).join("SKILL.md").to_string_lossy(),
            })
        })
        .collect()
}

/// `key: value` lines between leading `---` fences (the same simple parser
/// Shipyard uses; values lose surrounding quotes).
pub fn front_matter(text: &str) -> Vec<(String, String)> {
    let mut lines = text.lines();
    if lines.next().map(str::trim_end) != Some("---") {
        return Vec::new();
    }
    let mut out = Vec::new();
    for line in lines {
        if line.trim_end() == "---" {
            return out;
        }
        if let Some((k, v)) = line.split_once(':') {
            out.push((k.trim().to_string(), v.trim().trim_matches(|c| c == '"' || c == '\'').to_string()));
        }
    }
    // No closing fence: not front matter.
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_matter_parsing() {
        let fm = front_matter("---\nname: x\ndescription: \"Run: things\"\n---\nbody: no\n");
        assert_eq!(fm, vec![("name".into(), "x".into()), ("description".into(), "Run: things".into())]);
        assert!(front_matter("no front matter").is_empty());
        assert!(front_matter("---\nname: x\n").is_empty());
    }

    #[test]
    fn skills_listing() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("b")).unwrap();
        std::fs::write(d.path().join("b/SKILL.md"), "---\nname: bee\ndescription: B\n---\n").unwrap();
        std::fs::create_dir_all(d.path().join("a")).unwrap();
        std::fs::write(d.path().join("a/SKILL.md"), "# no fm").unwrap();
        std::fs::create_dir_all(d.path().join("c")).unwrap(); // no SKILL.md
        let s = scan_skills(d.path(), Path::new("/workspace"));
        assert_eq!(s.len(), 2);
        assert_eq!(s[0]["name"], "a");
        assert_eq!(s[0]["description"], "");
        assert_eq!(s[1]["name"], "bee");
        assert_eq!(s[1]["path"], "/workspace/skills/b/SKILL.md");
    }
}
