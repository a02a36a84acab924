//! Configuration from the environment, and the startup chores that depend on
//! it (workspace and profile directories, built-in skills).

use std::{
    io,
    path::{Path, PathBuf},
};

use runtime_common::{beneath::Workspace, text::split_command};

use crate::shared::{CONFIG_FILE, lexical_normalize};
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

/// Idle time after which an agent-browser daemon (and its Chromium) ends in
/// shared mode when `AGENT_BROWSER_IDLE_TIMEOUT_MS` is unset: a sandbox that
/// stops sending commands without being deleted does not keep a browser
/// forever.
pub(crate) const SHARED_IDLE_TIMEOUT_MS: u64 = 600_000;

/// Shared mode (`GULL_MODE=shared`): one Gull container serves many
/// sandboxes, each with its own agent-browser session (see `shared.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SharedConfig {
    /// Where every cargo is mounted (`<dir>/bay-cargo-<cargo_id>`).
    pub cargos_dir: PathBuf,
    /// Live browser sessions at most; a new sandbox beyond that is refused.
    pub max_sessions: usize,
    /// Gull's own directory, outside every cargo: the empty agent-browser
    /// config file and one home directory per sandbox.
    pub run_dir: PathBuf,
}

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
    /// `AGENT_BROWSER_IDLE_TIMEOUT_MS` for the daemons Gull starts (the
    /// daemon reads it from the environment it inherits from the CLI).
    pub idle_timeout_ms: Option<u64>,
    /// `Some` in shared mode.
    pub shared: Option<SharedConfig>,
}

impl Config {
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Testable core of [`Config::from_env`]. Errors name the variable.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
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
        let shared = match non_empty("GULL_MODE").as_deref() {
            None | Some("single") => None,
            Some("shared") => Some(shared_config(&non_empty)?),
            Some(other) => return Err(format!("GULL_MODE must be `single` or `shared`, not `{other}`")),
        };
        let idle_timeout_ms = match non_empty("AGENT_BROWSER_IDLE_TIMEOUT_MS") {
            Some(v) => Some(v.parse::<u64>().map_err(|_| format!("AGENT_BROWSER_IDLE_TIMEOUT_MS must be milliseconds (an integer), not `{v}`"))?),
            None => shared.as_ref().map(|_| SHARED_IDLE_TIMEOUT_MS),
        };
        Ok(Self {
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
            idle_timeout_ms,
            shared,
        })
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
        if let Some(sh) = &self.shared {
            // The empty config every shared CLI call is pointed at (see
            // `shared.rs`): written fresh, so nothing left there counts.
            std::fs::create_dir_all(sh.run_dir.join("homes"))?;
            let _ = std::fs::set_permissions(&sh.run_dir, std::fs::Permissions::from_mode(0o700));
            std::fs::write(sh.run_dir.join(CONFIG_FILE), "{}\n")?;
        }
        Ok(ws)
    }
}

fn shared_config(non_empty: &impl Fn(&str) -> Option<String>) -> Result<SharedConfig, String> {
    let abs = |k: &str, default: &str| {
        let p = PathBuf::from(non_empty(k).unwrap_or(default.into()));
        if p.is_absolute() { Ok(p) } else { Err(format!("{k} must be an absolute path, not `{}`", p.display())) }
    };
    let cargos_dir = abs("GULL_CARGOS_DIR", "/cargos")?;
    let run_dir = abs("GULL_RUN_DIR", "/tmp/gull")?;
    let max_sessions = match non_empty("GULL_MAX_SESSIONS") {
        None => 32,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => return Err(format!("GULL_MAX_SESSIONS must be a positive integer, not `{v}`")),
        },
    };
    // The per-sandbox homes hold agent-browser's auth vault and saved
    // states: inside the cargos they would be readable by other sandboxes.
    let (run, cargos) = (lexical_normalize(&run_dir), lexical_normalize(&cargos_dir));
    if run.starts_with(&cargos) || cargos.starts_with(&run) {
        return Err(format!("GULL_RUN_DIR ({}) must lie outside GULL_CARGOS_DIR ({})", run_dir.display(), cargos_dir.display()));
    }
    Ok(SharedConfig { cargos_dir, max_sessions, run_dir })
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
        Config::from_lookup(|k| m.get(k).cloned()).unwrap()
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
    fn modes() {
        let c = cfg_from(&[]);
        assert_eq!((c.shared.is_none(), c.idle_timeout_ms), (true, None));
        assert_eq!(cfg_from(&[("GULL_MODE", "single"), ("AGENT_BROWSER_IDLE_TIMEOUT_MS", "5")]).idle_timeout_ms, Some(5));
        let c = cfg_from(&[("GULL_MODE", "shared")]);
        let sh = c.shared.unwrap();
        assert_eq!(sh, SharedConfig { cargos_dir: "/cargos".into(), max_sessions: 32, run_dir: "/tmp/gull".into() });
        assert_eq!(c.idle_timeout_ms, Some(SHARED_IDLE_TIMEOUT_MS));
        let c = cfg_from(&[("GULL_MODE", "shared"), ("GULL_CARGOS_DIR", "/c"), ("GULL_MAX_SESSIONS", "3"), ("AGENT_BROWSER_IDLE_TIMEOUT_MS", "0")]);
        assert_eq!((c.shared.unwrap().max_sessions, c.idle_timeout_ms), (3, Some(0)));
        let err = |vars: &[(&str, &str)]| {
            let m: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            Config::from_lookup(|k| m.get(k).cloned()).unwrap_err()
        };
        assert!(err(&[("GULL_MODE", "multi")]).starts_with("GULL_MODE must be"));
        assert!(err(&[("GULL_MODE", "shared"), ("GULL_MAX_SESSIONS", "0")]).starts_with("GULL_MAX_SESSIONS"));
        assert!(err(&[("GULL_MODE", "shared"), ("GULL_CARGOS_DIR", "cargos")]).starts_with("GULL_CARGOS_DIR"));
        assert!(err(&[("GULL_MODE", "shared"), ("GULL_RUN_DIR", "/cargos/../cargos/gull")]).starts_with("GULL_RUN_DIR"));
        assert!(err(&[("AGENT_BROWSER_IDLE_TIMEOUT_MS", "10m")]).starts_with("AGENT_BROWSER_IDLE_TIMEOUT_MS"));
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
