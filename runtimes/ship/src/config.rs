//! Configuration from the environment, and the startup chores that depend on
//! it (profile env file, built-in skills, matplotlib config dir).

use std::{io, path::PathBuf};

use runtime_common::{beneath::Workspace, skills::copy_tree_into};
use rustix::fs::{Mode, OFlags};
use tracing::{info, warn};

/// Name of the env file written into the workspace. Shipyard's Ship writes
/// the same file and sources it before every shell command; agents (and the
/// web terminal of Shipyard) rely on it being there.
pub(crate) const ENV_FILE_NAME: &str = ".bay_env.sh";

#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// Workspace as configured (what clients see, e.g. `/workspace`).
    pub workspace: PathBuf,
    /// Canonical form of `workspace`, filled in by [`Config::prepare_workspace`].
    pub workspace_canon: PathBuf,
    pub host: String,
    pub port: u16,
    pub python: PathBuf,
    pub mpl_template: Option<PathBuf>,
    pub skills_dir: PathBuf,
    pub image: String,
    /// Parsed `BAY_PROFILE_ENV`, in order. `None` when the variable is unset.
    pub profile_env: Option<Vec<(String, String)>>,
    /// Writable matplotlib config dir (set at startup, see [`prepare_mplconfig`]).
    pub mplconfig_dir: Option<PathBuf>,
    /// `BAY_CARGO_LIMIT_BYTES`: the cargo's size limit (see `quota.rs`).
    pub cargo_limit: Option<u64>,
    /// `SHIP_SCROLLBACK_BYTES`: output kept per background process (see
    /// `processes.rs`).
    pub scrollback_bytes: usize,
    /// `SHIP_KERNEL_PREWARM=1`: start the Python kernel at boot instead of
    /// on the first `/ipython/exec` (see `kernel.rs`).
    pub kernel_prewarm: bool,
}

/// Default of `SHIP_SCROLLBACK_BYTES`.
pub(crate) const DEFAULT_SCROLLBACK_BYTES: usize = 1024 * 1024;

impl Config {
    pub fn from_env() -> Self {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Testable core of [`Config::from_env`].
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        let non_empty = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let workspace = PathBuf::from(non_empty("SHIP_WORKSPACE").unwrap_or("/workspace".into()));
        let workspace =
            if workspace.is_absolute() { workspace } else { std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")).join(workspace) };
        let port = match non_empty("SHIP_PORT").map(|p| p.trim().parse::<u16>()) {
            Some(Ok(p)) => p,
            Some(Err(_)) => {
                warn!("SHIP_PORT is not a valid port; using 8123");
                8123
            }
            None => 8123,
        };
        Self {
            workspace_canon: workspace.clone(),
            workspace,
            host: non_empty("SHIP_HOST").unwrap_or("0.0.0.0".into()),
            port,
            python: PathBuf::from(non_empty("SHIP_PYTHON").unwrap_or("/usr/bin/python3".into())),
            mpl_template: non_empty("SHIP_MPLCONFIG_TEMPLATE").map(PathBuf::from),
            skills_dir: PathBuf::from(non_empty("SHIP_SKILLS_DIR").unwrap_or("/opt/ship/skills".into())),
            image: non_empty("SHIP_IMAGE").unwrap_or("ship:default".into()),
            profile_env: get("BAY_PROFILE_ENV").map(|v| parse_profile_env(&v)),
            mplconfig_dir: None,
            kernel_prewarm: non_empty("SHIP_KERNEL_PREWARM").is_some_and(|v| is_truthy(&v)),
            cargo_limit: non_empty("BAY_CARGO_LIMIT_BYTES").and_then(|v| {
                let parsed = v.trim().parse::<u64>().ok();
                if parsed.is_none() {
                    warn!(value = %v, "BAY_CARGO_LIMIT_BYTES is not a byte count; no cargo limit");
                }
                parsed
            }),
            scrollback_bytes: match non_empty("SHIP_SCROLLBACK_BYTES").map(|v| v.trim().parse::<usize>()) {
                Some(Ok(n)) if n > 0 => n,
                Some(_) => {
                    warn!("SHIP_SCROLLBACK_BYTES is not a positive byte count; using 1 MiB");
                    DEFAULT_SCROLLBACK_BYTES
                }
                None => DEFAULT_SCROLLBACK_BYTES,
            },
        }
    }

    /// Creates the workspace if needed and records its canonical path.
    pub fn prepare_workspace(&mut self) -> io::Result<()> {
        std::fs::create_dir_all(&self.workspace)?;
        self.workspace_canon = self.workspace.canonicalize()?;
        Ok(())
    }

    pub fn env_file(&self) -> PathBuf {
        self.workspace_canon.join(ENV_FILE_NAME)
    }

    /// Variables every child (kernel and shell command) gets on top of the
    /// server's own environment. `BAY_SESSION_ID`, `BAY_SANDBOX_ID` and
    /// `BAY_WORKSPACE_PATH` pass through simply by being inherited;
    /// `BAY_RUNTIME_TOKEN` does not (see `runtime_common::token`).
    pub fn child_env(&self) -> Vec<(String, String)> {
        let ws = self.workspace.to_string_lossy().into_owned();
        let mut env = vec![("HOME".to_string(), ws)];
        if let Some(dir) = &self.mplconfig_dir {
            env.push(("MPLCONFIGDIR".into(), dir.to_string_lossy().into_owned()));
        }
        if let Some(profile) = &self.profile_env {
            env.extend(profile.iter().cloned());
        }
        env
    }
}

/// Parses `K1=V1:K2=V2`. Entries without `=` or with an invalid shell
/// identifier as key are skipped (they could not be exported anyway).
pub(crate) fn parse_profile_env(raw: &str) -> Vec<(String, String)> {
    raw.split(':')
        .filter(|e| !e.trim().is_empty())
        .filter_map(|entry| {
            let Some((k, v)) = entry.split_once('=') else {
                warn!(entry, "BAY_PROFILE_ENV entry without '='; skipped");
                return None;
            };
            let k = k.trim();
            if !is_shell_identifier(k) {
                warn!(key = k, "BAY_PROFILE_ENV key is not a valid name; skipped");
                return None;
            }
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

/// `1`, `true`, `yes`, `on` (any case) are true; anything else is false.
fn is_truthy(v: &str) -> bool {
    matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
}

pub(crate) fn is_shell_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic()) && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// POSIX single-quote quoting: `it's` → `'it'\''s'`.
pub(crate) fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Content of `.bay_env.sh`.
pub(crate) fn render_env_file(vars: &[(String, String)]) -> String {
    let mut out = String::from("# Written by ship at startup from BAY_PROFILE_ENV.\n");
    for (k, v) in vars {
        out.push_str(&format!("export {k}={}\n", shell_quote(v)));
    }
    out
}

/// Writes `.bay_env.sh` when `BAY_PROFILE_ENV` is set (even empty, so a
/// stale file from an earlier profile does not linger). Unset → untouched.
/// Written by descriptor in the workspace root (a temp file renamed into
/// place), so a symlink left at either name is replaced, never followed.
pub(crate) fn write_env_file(cfg: &Config, ws: &Workspace) -> io::Result<()> {
    let Some(vars) = &cfg.profile_env else {
        return Ok(());
    };
    let tmp = format!("{ENV_FILE_NAME}.tmp");
    let _ = rustix::fs::unlinkat(ws.root_fd(), tmp.as_str(), rustix::fs::AtFlags::empty());
    let fd = rustix::fs::openat(
        ws.root_fd(),
        tmp.as_str(),
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_bits_truncate(0o644),
    )?;
    io::Write::write_all(&mut std::fs::File::from(fd), render_env_file(vars).as_bytes())?;
    rustix::fs::renameat(ws.root_fd(), tmp.as_str(), ws.root_fd(), ENV_FILE_NAME)?;
    info!(path = %cfg.env_file().display(), vars = vars.len(), "wrote profile env file");
    Ok(())
}

/// CJK families to fall back to, in order of preference.
const CJK_FAMILIES: &[&str] = &["WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "Noto Sans CJK SC", "Noto Sans CJK JP"];

/// matplotlibrc for the kernel. matplotlib ≥ 3.6 falls back glyph by glyph
/// only across the entries of `font.family`, so the first CJK family known
/// to the font cache is appended there (the default look stays DejaVu Sans
/// for Latin text); naming a family the cache does not know would print a
/// "findfont" warning on every plot, hence the check. ASCII minus, because
/// CJK fonts lack U+2212.
pub(crate) fn render_matplotlibrc(font_cache_json: &str) -> String {
    let cjk = CJK_FAMILIES.iter().find(|f| font_cache_json.contains(&format!("\"name\": \"{f}\"")));
    let mut rc = String::from("# Written by ship at startup.\n");
    match cjk {
        Some(f) => {
            rc.push_str(&format!("font.family: sans-serif, {f}\n"));
            rc.push_str(&format!("font.sans-serif: DejaVu Sans, {f}, Arial, sans-serif\n"));
        }
        None => rc.push_str("font.sans-serif: DejaVu Sans, Arial, sans-serif\n"),
    }
    rc.push_str("axes.unicode_minus: False\n");
    rc
}

/// Prepares a writable matplotlib config dir in /tmp. Copying the pre-built
/// font cache avoids a multi-second cache rebuild on every sandbox's first
/// plot; keeping it out of the workspace keeps the user's files clean.
pub(crate) fn prepare_mplconfig(cfg: &Config) -> io::Result<PathBuf> {
    let dir = std::env::temp_dir().join("ship-mplconfig");
    std::fs::create_dir_all(&dir)?;
    let mut template_rc = false;
    if let Some(template) = &cfg.mpl_template {
        if template.is_dir() {
            copy_tree_into(template, std::os::fd::AsFd::as_fd(&std::fs::File::open(&dir)?))?;
            template_rc = template.join("matplotlibrc").exists();
        } else {
            warn!(path = %template.display(), "SHIP_MPLCONFIG_TEMPLATE is not a directory");
        }
    }
    if !template_rc {
        let mut cache = String::new();
        for entry in std::fs::read_dir(&dir)?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("fontlist") && name.ends_with(".json") {
                cache.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
            }
        }
        std::fs::write(dir.join("matplotlibrc"), render_matplotlibrc(&cache))?;
    }
    Ok(dir)
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
        let c = cfg_from(&[]);
        assert_eq!(c.workspace, PathBuf::from("/workspace"));
        assert_eq!(c.port, 8123);
        assert_eq!(c.host, "0.0.0.0");
        assert_eq!(c.python, PathBuf::from("/usr/bin/python3"));
        assert_eq!(c.image, "ship:default");
        assert!(c.profile_env.is_none());
        assert!(c.mpl_template.is_none());
        assert!(c.cargo_limit.is_none());
        assert!(!c.kernel_prewarm);
        assert!(cfg_from(&[("SHIP_KERNEL_PREWARM", "1")]).kernel_prewarm);
        assert!(cfg_from(&[("SHIP_KERNEL_PREWARM", "True")]).kernel_prewarm);
        assert!(!cfg_from(&[("SHIP_KERNEL_PREWARM", "0")]).kernel_prewarm);
        assert_eq!(cfg_from(&[("BAY_CARGO_LIMIT_BYTES", "1048576")]).cargo_limit, Some(1 << 20));
        assert!(cfg_from(&[("BAY_CARGO_LIMIT_BYTES", "1G")]).cargo_limit.is_none());
        assert_eq!(c.scrollback_bytes, 1 << 20);
        assert_eq!(cfg_from(&[("SHIP_SCROLLBACK_BYTES", "4096")]).scrollback_bytes, 4096);
        assert_eq!(cfg_from(&[("SHIP_SCROLLBACK_BYTES", "0")]).scrollback_bytes, 1 << 20);
    }

    #[test]
    fn profile_env_parsing() {
        let v = parse_profile_env("FOO=bar:EMPTY=:X=a=b::bad key=1:noeq:_ok1=it's");
        assert_eq!(v, vec![("FOO".into(), "bar".into()), ("EMPTY".into(), "".into()), ("X".into(), "a=b".into()), ("_ok1".into(), "it's".into()),]);
        assert!(parse_profile_env("").is_empty());
    }

    #[test]
    fn quoting_survives_bash() {
        let vars = vec![("A".to_string(), "it's $HOME `x` \"q\" \\n".to_string()), ("B".to_string(), "".to_string())];
        let text = render_env_file(&vars);
        assert!(text.contains("export A='it'\\''s $HOME `x` \"q\" \\n'\n"));
        // Round trip through a real shell when one is available.
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("env.sh");
        std::fs::write(&f, &text).unwrap();
        if let Ok(out) = std::process::Command::new("sh").arg("-c").arg(format!(". {}; printf '%s|%s' \"$A\" \"$B\"", f.display())).output() {
            assert_eq!(String::from_utf8_lossy(&out.stdout), "it's $HOME `x` \"q\" \\n|");
        }
    }

    #[test]
    fn env_file_written_only_when_profile_set() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().to_str().unwrap();
        let mut c = cfg_from(&[("SHIP_WORKSPACE", ws)]);
        c.prepare_workspace().unwrap();
        let w = Workspace::open(&c.workspace).unwrap();
        write_env_file(&c, &w).unwrap();
        assert!(!c.env_file().exists());
        let mut c = cfg_from(&[("SHIP_WORKSPACE", ws), ("BAY_PROFILE_ENV", "FOO=bar:N=1")]);
        c.prepare_workspace().unwrap();
        // A link planted at the temp name is replaced, not written through.
        let outside = tempfile::NamedTempFile::new().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join(".bay_env.sh.tmp")).unwrap();
        write_env_file(&c, &w).unwrap();
        assert_eq!(std::fs::read_to_string(outside.path()).unwrap(), "");
        let text = std::fs::read_to_string(c.env_file()).unwrap();
        assert!(text.contains("export FOO='bar'\n"));
        assert!(text.contains("export N='1'\n"));
        let env = c.child_env();
        assert!(env.contains(&("FOO".into(), "bar".into())));
        assert!(env.contains(&("HOME".into(), ws.to_string())));
    }

    #[test]
    fn matplotlibrc_only_names_cached_cjk_fonts() {
        let rc = render_matplotlibrc(r#"{"ttflist": [{"name": "WenQuanYi Micro Hei"}]}"#);
        assert!(rc.contains("font.family: sans-serif, WenQuanYi Micro Hei\n"));
        let rc = render_matplotlibrc("");
        assert!(!rc.contains("font.family"));
        assert!(rc.contains("axes.unicode_minus: False"));
    }
}
