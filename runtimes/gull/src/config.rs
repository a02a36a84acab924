//! Configuration from the environment, and the startup chores that depend on
//! it (workspace and profile directories, built-in skills).

use std::{
    io,
    path::{Path, PathBuf},
};

use runtime_common::{beneath::Workspace, text::split_command};
use tracing::warn;

/// The persistent Chromium profile, relative to the workspace.
pub(crate) const PROFILE_REL: &str = ".browser/profile";

/// Chromium flags a container needs: no user namespaces for Chromium's own
/// sandbox, no GPU, and a `/dev/shm` that is only 64 MB by default. The HTTP
/// cache goes to `/tmp` rather than into the profile on the cargo, where it
/// would eat the user's space (cookies, localStorage and IndexedDB stay in
/// the profile).
pub(crate) const BASE_CHROMIUM_ARGS: &[&str] =
    &["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disk-cache-dir=/tmp/gull-chromium-cache"];

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub host: String,
    pub port: u16,
    /// Workspace (the cargo), also the working directory of every command.
    pub workspace: PathBuf,
    /// agent-browser session name: the sandbox id.
    pub session: String,
    pub agent_browser: PathBuf,
    pub chromium: PathBuf,
    /// Chromium flags: [`BASE_CHROMIUM_ARGS`] plus `GULL_CHROMIUM_ARGS`.
    pub chromium_args: Vec<String>,
    /// `--user-agent=…` from `GULL_CHROMIUM_ARGS` (agent-browser has its own
    /// option for it, and a user agent usually contains commas, which its
    /// comma-separated `--args` list cannot carry).
    pub user_agent: Option<String>,
    /// agent-browser's socket and pid files: container-local (`/tmp`), never
    /// on the cargo, so a new container never sees a dead daemon's files.
    pub socket_dir: PathBuf,
    /// Persistent Chromium profile on the cargo.
    pub profile_dir: PathBuf,
    /// Built-in skills shipped in the image, copied into the workspace.
    pub skills_dir: PathBuf,
}

impl Config {
    pub fn from_env() -> Self {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Testable core of [`Config::from_env`].
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        let non_empty = |k: &str| get(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let workspace = PathBuf::from(non_empty("BAY_WORKSPACE_PATH").unwrap_or("/workspace".into()));
        let workspace =
            if workspace.is_absolute() { workspace } else { std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")).join(workspace) };
        let port = match non_empty("GULL_PORT").map(|p| p.parse::<u16>()) {
            Some(Ok(p)) => p,
            Some(Err(_)) => {
                warn!("GULL_PORT is not a valid port; using 8115");
                8115
            }
            None => 8115,
        };
        let session = non_empty("BAY_SANDBOX_ID").or_else(|| non_empty("SANDBOX_ID")).unwrap_or_else(|| "default".into());
        let agent_browser = non_empty("GULL_AGENT_BROWSER_BIN")
            .map(PathBuf::from)
            .or_else(|| find_in_path("agent-browser", get("PATH").as_deref()))
            .unwrap_or_else(|| PathBuf::from("/usr/local/bin/agent-browser"));
        let (chromium_args, user_agent) = chromium_args(get("GULL_CHROMIUM_ARGS").as_deref());
        if let Some(mode) = non_empty("GULL_MODE").filter(|m| m != "single") {
            warn!(mode, "only GULL_MODE=single is supported; running in single mode");
        }
        Self {
            host: non_empty("GULL_HOST").unwrap_or("0.0.0.0".into()),
            port,
            profile_dir: workspace.join(PROFILE_REL),
            workspace,
            session,
            agent_browser,
            chromium: PathBuf::from(non_empty("GULL_CHROMIUM_BIN").unwrap_or("/usr/bin/chromium".into())),
            chromium_args,
            user_agent,
            socket_dir: PathBuf::from(non_empty("AGENT_BROWSER_SOCKET_DIR").unwrap_or("/tmp/agent-browser".into())),
            skills_dir: PathBuf::from(non_empty("GULL_SKILLS_DIR").unwrap_or("/opt/gull/skills".into())),
        }
    }

    /// Creates the workspace (and opens it), the profile directory in it (by
    /// descriptor: a `.browser` symlink pointing out of the workspace is
    /// refused), and the socket directory private to this user
    /// (agent-browser's daemon listens there).
    pub fn prepare_dirs(&self) -> io::Result<Workspace> {
        std::fs::create_dir_all(&self.workspace)?;
        let ws = Workspace::open(&self.workspace)?;
        ws.ensure_dir(PROFILE_REL).map_err(|e| io::Error::other(format!("{}: {e}", self.profile_dir.display())))?;
        std::fs::create_dir_all(&self.socket_dir)?;
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&self.socket_dir, std::fs::Permissions::from_mode(0o700));
        Ok(ws)
    }
}

/// [`BASE_CHROMIUM_ARGS`] plus the shell-split extras. agent-browser splits
/// its `--args` list at commas and newlines, so an extra flag containing a
/// comma cannot be passed through: `--user-agent=` is routed to its own
/// option, anything else with a comma is dropped with a warning.
pub(crate) fn chromium_args(extra: Option<&str>) -> (Vec<String>, Option<String>) {
    let mut args: Vec<String> = BASE_CHROMIUM_ARGS.iter().map(|s| s.to_string()).collect();
    let mut user_agent = None;
    let words = match extra.map(split_command).transpose() {
        Ok(w) => w.unwrap_or_default(),
        Err(e) => {
            warn!(error = %e, "GULL_CHROMIUM_ARGS cannot be split; ignored");
            Vec::new()
        }
    };
    for w in words {
        if let Some(ua) = w.strip_prefix("--user-agent=") {
            user_agent = Some(ua.to_string());
        } else if w.contains([',', '\n']) {
            warn!(arg = %w, "Chromium flag with a comma cannot be passed through agent-browser; dropped");
        } else if !w.is_empty() && !args.contains(&w) {
            args.push(w);
        }
    }
    (args, user_agent)
}

fn find_in_path(name: &str, path: Option<&str>) -> Option<PathBuf> {
    path?.split(':').filter(|d| !d.is_empty()).map(|d| Path::new(d).join(name)).find(|p| is_executable(p))
}

/// Whether this process may execute `path` (a regular file with `x` for us).
pub(crate) fn is_executable(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    if !path.is_file() {
        return false;
    }
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: plain syscall on a NUL-terminated string.
    unsafe { libc::access(c.as_ptr(), libc::X_OK) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg_from(vars: &[(&str, &str)]) -> Config {
        let m: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let c = cfg_from(&[("PATH", "")]);
        assert_eq!(c.port, 8115);
        assert_eq!(c.host, "0.0.0.0");
        assert_eq!(c.workspace, PathBuf::from("/workspace"));
        assert_eq!(c.profile_dir, PathBuf::from("/workspace/.browser/profile"));
        assert_eq!(c.session, "default");
        assert_eq!(c.agent_browser, PathBuf::from("/usr/local/bin/agent-browser"));
        assert_eq!(c.chromium, PathBuf::from("/usr/bin/chromium"));
        assert_eq!(c.socket_dir, PathBuf::from("/tmp/agent-browser"));
        assert_eq!(c.chromium_args, BASE_CHROMIUM_ARGS);
        assert!(c.user_agent.is_none());
    }

    #[test]
    fn session_name_precedence() {
        assert_eq!(cfg_from(&[("BAY_SANDBOX_ID", "sb1"), ("SANDBOX_ID", "x")]).session, "sb1");
        assert_eq!(cfg_from(&[("BAY_SANDBOX_ID", " "), ("SANDBOX_ID", "x")]).session, "x");
        let c = cfg_from(&[("BAY_WORKSPACE_PATH", "/w"), ("GULL_PORT", "9000")]);
        assert_eq!((c.port, c.profile_dir), (9000, PathBuf::from("/w/.browser/profile")));
        assert_eq!(cfg_from(&[("GULL_PORT", "nope")]).port, 8115);
    }

    #[test]
    fn extra_chromium_args() {
        let (args, ua) = chromium_args(Some(r#"--lang=de "--user-agent=Mozilla/5.0 (X11, Linux) Test" --disable-features=A,B --no-sandbox"#));
        assert_eq!(&args[..BASE_CHROMIUM_ARGS.len()], BASE_CHROMIUM_ARGS);
        assert_eq!(&args[BASE_CHROMIUM_ARGS.len()..], ["--lang=de"]);
        assert_eq!(ua.as_deref(), Some("Mozilla/5.0 (X11, Linux) Test"));
        // Unbalanced quotes: extras ignored, base flags kept.
        assert_eq!(chromium_args(Some("--x 'y")).0, BASE_CHROMIUM_ARGS);
    }
}
