//! Shared mode (`GULL_MODE=shared`): one Gull container serves every
//! sandbox, the way Shipyard Neo's shared Gull does, but each sandbox gets
//! its own agent-browser session (its own daemon, Chromium, and profile in
//! Gull's private run directory), so pages, cookies and storage never mix.
//!
//! Every cargo is mounted under [`SharedConfig::cargos_dir`], so Gull (and
//! the browsers it starts) can see every sandbox's files. This module keeps
//! a sandbox's command from reaching another sandbox's browser or files:
//!
//! * agent-browser parses its global flags anywhere in the argv (`flags.rs`
//!   of agent-browser 0.19: `parse_flags` scans every argument), so a flag
//!   that picks a session, profile, CDP endpoint, executable, launch flags,
//!   extension, provider, state or config file, or a path to write to is
//!   refused wherever it appears ([`REFUSED_FLAGS`]), also as `--flag=value`.
//! * Commands that list or reach other sessions or browsers are refused
//!   ([`REFUSED_COMMANDS`]).
//! * `file:` URLs are refused in any argument: they would read other cargos.
//! * URLs of the host's loopback address are refused in any argument
//!   (`loopback.rs`): every browser's DevTools listens there.
//! * Path arguments of the commands that read or write files are confined
//!   to the cargo ([`translate_path`]): `/workspace/…` (the sandbox's own
//!   spelling) maps to the cargo, relative paths are taken in it, anything
//!   else must lie beneath it, and no existing component may be a symlink.
//!   agent-browser never gets the cargo path itself: `staging.rs` hands it
//!   a private copy and copies results back race-free.
//!
//! The config file agent-browser would read from the working directory
//! (`./agent-browser.json`) or from `$HOME/.agent-browser/config.json` is
//! neutralised by pointing `AGENT_BROWSER_CONFIG` at an empty file Gull
//! owns ([`CONFIG_FILE`] in the run directory): an explicit config replaces
//! both (`load_config` in agent-browser's `flags.rs`). `HOME` and the XDG
//! directories are a per-sandbox directory in the run directory, so the
//! auth vault, saved states and default screenshot directory agent-browser
//! keeps under `$HOME/.agent-browser` are per sandbox and never in a cargo.

use std::{
    io,
    path::{Path, PathBuf},
};

use crate::config::SharedConfig;

/// Gull's empty agent-browser config, in [`SharedConfig::run_dir`].
pub(crate) const CONFIG_FILE: &str = "agent-browser.json";
/// A cargo's directory name under the cargos directory is this plus its id.
pub(crate) const CARGO_PREFIX: &str = "bay-cargo-";
pub(crate) const MAX_ID_LEN: usize = 128;
/// The sandbox's own name for its cargo (its Ship container's mount).
const WORKSPACE: &str = "/workspace";

/// One sandbox's browser: its session name and its cargo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SandboxTarget {
    pub sandbox_id: String,
    pub cargo_id: String,
    pub cargo_dir: PathBuf,
}

/// Global flags (agent-browser `flags.rs`) refused in shared mode, with why.
pub(crate) const REFUSED_FLAGS: &[(&str, &str)] = &[
    ("--session", "picks another browser session"),
    ("--session-name", "picks a saved browser state by name"),
    ("--profile", "picks another Chromium profile directory"),
    ("--state", "loads a storage-state file from any path"),
    ("--cdp", "connects to another browser's DevTools endpoint"),
    ("--auto-connect", "attaches to another running Chromium"),
    ("--executable-path", "runs another browser executable"),
    ("--args", "adds Chromium launch flags"),
    ("--extension", "loads a browser extension from any path"),
    ("-p", "connects to a cloud browser provider"),
    ("--provider", "connects to a cloud browser provider"),
    ("--engine", "picks another browser engine"),
    ("--config", "loads an agent-browser config file"),
    ("--allow-file-access", "lets pages read local files"),
    ("--download-path", "writes downloads to any directory"),
    ("--screenshot-dir", "writes screenshots to any directory"),
    ("--action-policy", "reads a policy file from any path"),
];

/// Commands refused in shared mode, with why.
pub(crate) const REFUSED_COMMANDS: &[(&str, &str)] = &[
    ("session", "lists every sandbox's browser session"),
    ("connect", "attaches the session to another browser's DevTools endpoint"),
    ("inspect", "serves this browser's DevTools on a local port that other sandboxes' browsers can reach"),
    ("install", "changes the browser installation that every sandbox uses"),
];

/// Global flags that take a value (agent-browser's `clean_args`): they and
/// their value are not part of the command.
const VALUE_FLAGS: &[&str] = &[
    "--session",
    "--headers",
    "--executable-path",
    "--cdp",
    "--extension",
    "--profile",
    "--state",
    "--proxy",
    "--proxy-bypass",
    "--args",
    "--user-agent",
    "-p",
    "--provider",
    "--device",
    "--session-name",
    "--color-scheme",
    "--download-path",
    "--max-output",
    "--allowed-domains",
    "--action-policy",
    "--confirm-actions",
    "--config",
    "--engine",
    "--screenshot-dir",
    "--screenshot-quality",
    "--screenshot-format",
];
/// Boolean global flags; they swallow a following `true`/`false`.
const BOOL_FLAGS: &[&str] = &[
    "--json",
    "--full",
    "-f",
    "--headed",
    "--debug",
    "--ignore-https-errors",
    "--allow-file-access",
    "--auto-connect",
    "--annotate",
    "--content-boundaries",
    "--confirm-interactive",
];

pub(crate) fn valid_id(s: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn check_id(field: &str, s: &str) -> Result<(), String> {
    if valid_id(s) { Ok(()) } else { Err(format!("Invalid {field}: use 1 to {MAX_ID_LEN} characters of A-Z, a-z, 0-9, `_` and `-`")) }
}

/// The sandbox a request is for: `None` without ids (single-mode behaviour
/// with the configured session), an error (exit code 2) for bad ids or a
/// cargo that is not mounted.
pub(crate) fn resolve_target(sh: &SharedConfig, sandbox_id: Option<&str>, cargo_id: Option<&str>) -> Result<Option<SandboxTarget>, String> {
    let (sandbox_id, cargo_id) = match (sandbox_id, cargo_id) {
        // Without ids a request would run in no sandbox's confinement (the
        // configured session, none of the checks below): shared mode serves
        // sandboxes only (Shipyard Neo falls back to single mode).
        (None, None) => return Err("shared mode needs sandbox_id and cargo_id with every command".into()),
        (Some(s), Some(c)) => (s, c),
        _ => return Err("sandbox_id and cargo_id go together in shared mode: give both".into()),
    };
    check_id("sandbox_id", sandbox_id)?;
    check_id("cargo_id", cargo_id)?;
    let cargo_dir = sh.cargos_dir.join(format!("{CARGO_PREFIX}{cargo_id}"));
    // A directory, not a link to one (symlink_metadata does not follow).
    if !std::fs::symlink_metadata(&cargo_dir).is_ok_and(|m| m.is_dir()) {
        return Err(format!("cargo {cargo_id} is not mounted at {}", cargo_dir.display()));
    }
    Ok(Some(SandboxTarget { sandbox_id: sandbox_id.to_string(), cargo_id: cargo_id.to_string(), cargo_dir }))
}

/// A sandbox's `HOME` (outside every cargo).
pub(crate) fn home_dir(sh: &SharedConfig, sandbox_id: &str) -> PathBuf {
    sh.run_dir.join("homes").join(sandbox_id)
}

/// A sandbox's Chromium profile: in Gull's private run directory, never in
/// a cargo, whose sandbox could swap a component for a symlink to another
/// sandbox's profile between Gull's check and Chromium's open.
pub(crate) fn profile_dir(sh: &SharedConfig, sandbox_id: &str) -> PathBuf {
    sh.run_dir.join("profiles").join(sandbox_id)
}

/// Where a sandbox's file arguments are staged (`staging.rs`).
pub(crate) fn staging_dir(sh: &SharedConfig, sandbox_id: &str) -> PathBuf {
    sh.run_dir.join("staging").join(sandbox_id)
}

/// How agent-browser uses a path argument (decides how it is staged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    /// Read during the command (`upload`, `state load|show`, `--baseline`).
    Read,
    /// Written during the command (`screenshot`, `pdf`, `trace stop`, …).
    Write,
    /// Written when the recording stops, in a later command.
    Record,
    /// A directory Chromium saves later downloads into (`download`).
    DownloadDir,
}

/// Checks a sandbox's argv and confines its path arguments to its cargo.
/// The error is the stderr of an exit code 2 answer.
pub(crate) fn check_args(mut args: Vec<String>, cargo_dir: &Path) -> Result<Vec<String>, String> {
    for a in &args {
        if let Some((flag, why)) = REFUSED_FLAGS.iter().find(|(f, _)| a == f || a.strip_prefix(f).is_some_and(|r| r.starts_with('='))) {
            return Err(format!("`{flag}` is refused in shared mode: it {why}"));
        }
        if is_file_url(a) {
            return Err("file: URLs are refused in shared mode (this browser host sees every sandbox's files); \
                        serve the file over HTTP instead, e.g. `python3 -m http.server` in the sandbox"
                .into());
        }
    }
    let pos = positional(&args);
    if let Some((cmd, why)) = pos.first().and_then(|&v| REFUSED_COMMANDS.iter().find(|(c, _)| *c == args[v])) {
        return Err(format!("`{cmd}` is refused in shared mode: it {why}"));
    }
    // Navigating commands take a bare host (`open 127.0.0.1:9222`) and add
    // `https://` themselves (agent-browser's `commands.rs`).
    let navigates = pos.first().is_some_and(|&v| matches!(args[v].as_str(), "open" | "goto" | "navigate" | "tab" | "window" | "record" | "diff"));
    for &i in pos.iter().skip(1) {
        if crate::loopback::is_loopback_url(&args[i], navigates) {
            return Err(format!(
                "`{}` is refused in shared mode: it names this browser host's own loopback address, where every \
                 sandbox's browser serves DevTools; reach services by their network name instead",
                args[i]
            ));
        }
    }
    for (i, _) in path_args(&args) {
        args[i] = translate_path(&args[i], cargo_dir)?;
    }
    Ok(args)
}

/// The URL Chromium would see in `arg`: its URL parser drops tabs and
/// newlines anywhere and control characters and spaces in front, and
/// `view-source:` (and the like) wraps another URL. Lower-cased.
pub(crate) fn unwrap_url(arg: &str) -> String {
    let cleaned: String = arg.chars().filter(|c| !matches!(c, '\t' | '\n' | '\r')).collect::<String>().to_ascii_lowercase();
    let mut s = cleaned.as_str();
    loop {
        s = s.trim_start_matches(|c: char| c <= ' ');
        match ["view-source:", "filesystem:", "blob:"].iter().find_map(|w| s.strip_prefix(w)) {
            Some(inner) => s = inner,
            None => return s.to_string(),
        }
    }
}

fn is_file_url(arg: &str) -> bool {
    unwrap_url(arg).starts_with("file:")
}

/// The command and its first argument (`record`, `stop`), flags left out.
pub(crate) fn command_words(args: &[String]) -> (Option<String>, Option<String>) {
    let pos = positional(args);
    let word = |k: usize| pos.get(k).map(|&i| args[i].clone());
    (word(0), word(1))
}

/// Indices of the command and its arguments in `args`: global flags and
/// their values left out, as agent-browser's `clean_args` does.
fn positional(args: &[String]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        if VALUE_FLAGS.contains(&a) {
            i += 2;
            continue;
        }
        if BOOL_FLAGS.contains(&a) {
            if matches!(args.get(i + 1).map(String::as_str), Some("true" | "false")) {
                i += 1;
            }
        } else {
            out.push(i);
        }
        i += 1;
    }
    out
}

/// Indices in `args` of the arguments agent-browser 0.19 takes as file
/// paths (from its `commands.rs`): `screenshot [sel] [path]`, `pdf <path>`,
/// `upload <sel> <files…>`, `download <sel> <path>`, `wait --download
/// [path]`, `trace|profiler stop [path]`, `record start|restart <path>`,
/// `state save|load|show <path>`, `diff snapshot|screenshot --baseline
/// <file> [--output <file>]`.
/// `download` only sets Chromium's download directory (agent-browser
/// 0.19's `handle_download`), and `wait --download` only waits: the files
/// arrive later, see `staging.rs`.
pub(crate) fn path_args(args: &[String]) -> Vec<(usize, FileKind)> {
    use FileKind::*;
    let pos = positional(args);
    let Some((&verb, rest)) = pos.split_first() else {
        return Vec::new();
    };
    let word = |k: usize| rest.get(k).map(|&i| args[i].as_str());
    let at = |k: usize, kind: FileKind| rest.get(k).map(|&i| (i, kind)).into_iter().collect::<Vec<_>>();
    match (args[verb].as_str(), word(0)) {
        ("screenshot", _) => match rest.len() {
            0 => Vec::new(),
            1 if !screenshot_arg_is_path(&args[rest[0]]) => Vec::new(),
            1 => at(0, Write),
            _ => at(1, Write),
        },
        ("pdf", _) => at(0, Write),
        ("upload", _) => rest.iter().skip(1).map(|&i| (i, Read)).collect(),
        ("download", _) => at(1, DownloadDir),
        ("trace" | "profiler", Some("stop")) => at(1, Write),
        ("record", Some("start" | "restart")) => at(1, Record),
        ("state", Some("save")) => at(1, Write),
        ("state", Some("load" | "show")) => at(1, Read),
        ("diff", Some("snapshot" | "screenshot")) => {
            let mut out = Vec::new();
            let mut k = 1;
            while k < rest.len() {
                match word(k) {
                    Some("-b" | "--baseline") => {
                        out.extend(at(k + 1, Read));
                        k += 1;
                    }
                    Some("-o" | "--output") => {
                        out.extend(at(k + 1, Write));
                        k += 1;
                    }
                    Some("-s" | "--selector" | "-d" | "--depth" | "-t" | "--threshold") => k += 1,
                    _ => {}
                }
                k += 1;
            }
            out
        }
        ("wait", _) => {
            let words: Vec<&str> = rest.iter().map(|&i| args[i].as_str()).collect();
            // `wait` looks at these first and then ignores `--download`.
            if words.iter().any(|w| matches!(*w, "--url" | "-u" | "--load" | "-l" | "--fn" | "--text" | "-t")) {
                return Vec::new();
            }
            match words.iter().position(|w| matches!(*w, "--download" | "-d")) {
                Some(k) if word(k + 1).is_some_and(|w| !w.starts_with("--")) => at(k + 1, Write),
                _ => Vec::new(),
            }
        }
        _ => Vec::new(),
    }
}

/// agent-browser's rule for a lone `screenshot` argument: a path when it
/// starts with `./`/`../`, contains `/` or has an image extension, unless
/// it looks like a selector (`.x`, `#x`, `@e1`).
fn screenshot_arg_is_path(a: &str) -> bool {
    let relative = a.starts_with("./") || a.starts_with("../");
    let selector = !relative && (a.starts_with('.') || a.starts_with('#') || a.starts_with('@'));
    let image = [".png", ".jpg", ".jpeg", ".webp"].iter().any(|e| a.ends_with(e));
    !selector && (relative || a.contains('/') || image)
}

/// A path argument made absolute inside the cargo: `/workspace[/…]` is the
/// cargo, relative paths are taken in it, others must already be in it.
/// After collapsing `..` lexically the path must lie beneath the cargo, and
/// no existing component below the cargo may be a symlink (a link could
/// point into another cargo). The walk checks the path as it is now, for a
/// clear early refusal; what keeps a later swap from mattering is that the
/// copy to or from the cargo (`staging.rs`) walks it by descriptor.
pub(crate) fn translate_path(arg: &str, cargo_dir: &Path) -> Result<String, String> {
    let refuse = |why: &str| Err(format!("Path `{arg}` is refused in shared mode: {why}"));
    if arg.contains('\0') {
        return refuse("it contains a NUL byte");
    }
    let p = Path::new(arg);
    let full = match p.strip_prefix(WORKSPACE) {
        Ok(rest) => cargo_dir.join(rest),
        Err(_) if p.is_relative() => cargo_dir.join(p),
        Err(_) => p.to_path_buf(),
    };
    let base = lexical_normalize(cargo_dir);
    let norm = lexical_normalize(&full);
    let rel = match norm.strip_prefix(&base) {
        Ok(rel) if !rel.as_os_str().is_empty() => rel.to_path_buf(),
        _ => return refuse("it must name a file inside /workspace"),
    };
    let mut cur = base;
    for c in rel.components() {
        cur.push(c);
        match std::fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => return refuse("it goes through a symbolic link"),
            Ok(_) => {}
            // Nothing below a missing component (or a file) exists.
            Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) => break,
            Err(e) => return refuse(&format!("cannot check it ({e})")),
        }
    }
    Ok(norm.to_string_lossy().into_owned())
}

pub(crate) use runtime_common::beneath::lexical_normalize;

/// agent-browser's output names the cargo as Gull sees it
/// (`/cargos/bay-cargo-…/shot.png`); the sandbox knows it as `/workspace`.
pub(crate) fn to_workspace_view(text: &str, cargo_dir: &Path) -> String {
    let needle = cargo_dir.to_string_lossy();
    if needle.is_empty() || !text.contains(&*needle) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(&*needle) {
        let after = &rest[i + needle.len()..];
        // `/cargos/bay-cargo-ab` must not rewrite `/cargos/bay-cargo-abc`.
        let whole = !after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        out.push_str(&rest[..i]);
        out.push_str(if whole { WORKSPACE } else { &needle });
        rest = after;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    fn shared(dir: &Path) -> SharedConfig {
        SharedConfig { cargos_dir: dir.to_path_buf(), max_sessions: 2, run_dir: PathBuf::from("/tmp/gull-test-run") }
    }

    #[test]
    fn ids_and_targets() {
        assert!(valid_id("sb-1_A"));
        assert!(valid_id(&"a".repeat(128)));
        for bad in ["", "a/b", "..", "a b", "é", &"a".repeat(129)] {
            assert!(!valid_id(bad), "{bad}");
        }
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("bay-cargo-c1")).unwrap();
        std::os::unix::fs::symlink(d.path().join("bay-cargo-c1"), d.path().join("bay-cargo-link")).unwrap();
        let sh = shared(d.path());
        assert!(resolve_target(&sh, None, None).unwrap_err().contains("needs sandbox_id and cargo_id"));
        let t = resolve_target(&sh, Some("sb"), Some("c1")).unwrap().unwrap();
        assert_eq!(t.cargo_dir, d.path().join("bay-cargo-c1"));
        assert!(resolve_target(&sh, Some("sb"), None).unwrap_err().contains("together"));
        assert!(resolve_target(&sh, None, Some("c1")).unwrap_err().contains("together"));
        assert!(resolve_target(&sh, Some("../x"), Some("c1")).unwrap_err().contains("Invalid sandbox_id"));
        assert!(resolve_target(&sh, Some("sb"), Some("c1/..")).unwrap_err().contains("Invalid cargo_id"));
        let e = resolve_target(&sh, Some("sb"), Some("nope")).unwrap_err();
        assert_eq!(e, format!("cargo nope is not mounted at {}", d.path().join("bay-cargo-nope").display()));
        assert!(resolve_target(&sh, Some("sb"), Some("link")).unwrap_err().contains("not mounted"));
    }

    #[test]
    fn refused_flags_anywhere_and_in_equals_form() {
        let cargo = Path::new("/cargos/bay-cargo-c");
        for argv in [
            v(&["--session", "other", "get", "title"]),
            v(&["get", "title", "--session", "other"]),
            v(&["open", "x.com", "--session=other"]),
            v(&["--cdp", "9222", "snapshot"]),
            v(&["open", "x.com", "--auto-connect"]),
            v(&["open", "x.com", "--profile", "/cargos/bay-cargo-o/.browser/profile"]),
            v(&["--executable-path=/bin/sh", "open", "x"]),
            v(&["--args", "--remote-allow-origins=*", "open", "x"]),
            v(&["--extension", "/tmp/e", "open", "x"]),
            v(&["-p", "browserbase", "open", "x"]),
            v(&["--provider=kernel", "open", "x"]),
            v(&["--state", "/cargos/bay-cargo-o/s.json", "open", "x"]),
            v(&["--config", "/tmp/c.json", "open", "x"]),
            v(&["--allow-file-access", "open", "x"]),
            v(&["--download-path", "/tmp", "open", "x"]),
            v(&["--screenshot-dir", "/tmp", "screenshot"]),
            v(&["--session-name", "x", "open", "x"]),
            v(&["--engine", "lightpanda", "open", "x"]),
            v(&["--action-policy", "/etc/passwd", "open", "x"]),
            // agent-browser would take it as a flag even here.
            v(&["fill", "@e1", "--cdp"]),
        ] {
            let e = check_args(argv.clone(), cargo).unwrap_err();
            assert!(e.contains("refused in shared mode"), "{argv:?}: {e}");
        }
        // Harmless global flags pass, with their values.
        let ok = v(&["--json", "open", "example.com", "--headers", r#"{"A":"b"}"#, "--user-agent", "UA"]);
        assert_eq!(check_args(ok.clone(), cargo).unwrap(), ok);
        // Text that merely looks like a flag prefix is not a flag.
        let ok = v(&["fill", "@e1", "--sessions", "-px"]);
        assert_eq!(check_args(ok.clone(), cargo).unwrap(), ok);
    }

    #[test]
    fn refused_commands() {
        let cargo = Path::new("/cargos/bay-cargo-c");
        for (argv, cmd) in [
            (v(&["session", "list"]), "session"),
            (v(&["session"]), "session"),
            (v(&["--json", "session", "list"]), "session"),
            (v(&["connect", "9222"]), "connect"),
            (v(&["inspect"]), "inspect"),
            (v(&["install", "--with-deps"]), "install"),
        ] {
            let e = check_args(argv, cargo).unwrap_err();
            assert!(e.starts_with(&format!("`{cmd}` is refused in shared mode")), "{e}");
        }
        // The same words as arguments are fine.
        let ok = v(&["fill", "@e1", "session"]);
        assert_eq!(check_args(ok.clone(), cargo).unwrap(), ok);
    }

    #[test]
    fn file_urls_are_refused_in_any_argument() {
        let cargo = Path::new("/cargos/bay-cargo-c");
        for argv in [
            v(&["open", "file:///cargos/bay-cargo-o/secret"]),
            v(&["open", "FILE:///etc/passwd"]),
            v(&["open", " \tfi\nle:/etc/passwd"]),
            v(&["tab", "new", "view-source:file:///etc/passwd"]),
            v(&["diff", "url", "https://a", "file:///etc/passwd"]),
            v(&["record", "start", "a.webm", "file:///etc/passwd"]),
        ] {
            let e = check_args(argv.clone(), cargo).unwrap_err();
            assert!(e.starts_with("file: URLs are refused"), "{argv:?}: {e}");
        }
        for ok in [v(&["fill", "@e1", "a file: here"]), v(&["open", "https://x/file:"]), v(&["open", "profile.example.com"])] {
            assert_eq!(check_args(ok.clone(), cargo).unwrap(), ok);
        }
    }

    #[test]
    fn loopback_urls_are_refused_in_any_argument() {
        let cargo = Path::new("/cargos/bay-cargo-c");
        for argv in [
            v(&["open", "http://127.0.0.1:9222/json/list"]),
            v(&["open", "127.0.0.1:9222/json/list"]),
            v(&["goto", "localhost:9222"]),
            v(&["tab", "new", "http://2130706433:9222/json"]),
            v(&["open", "view-source:http://[::1]:9222/json"]),
            v(&["diff", "url", "https://a", "http://0x7f000001/"]),
            v(&["fill", "@e1", "http://127.1/json/list"]),
            v(&["--json", "open", "http://0.0.0.0:9222/"]),
        ] {
            let e = check_args(argv.clone(), cargo).unwrap_err();
            assert!(e.contains("loopback address"), "{argv:?}: {e}");
        }
        // Bare host names count only where agent-browser adds `https://`.
        for ok in [v(&["fill", "@e1", "localhost"]), v(&["open", "http://ship:8000/"]), v(&["type", "@e1", "127.0.0.1"])] {
            assert_eq!(check_args(ok.clone(), cargo).unwrap(), ok);
        }
    }

    #[test]
    fn path_kinds() {
        use FileKind::*;
        let kinds = |a: &[&str]| path_args(&v(a)).into_iter().map(|(_, k)| k).collect::<Vec<_>>();
        assert_eq!(kinds(&["screenshot", "a.png"]), [Write]);
        assert_eq!(kinds(&["upload", "@e1", "a", "b"]), [Read, Read]);
        assert_eq!(kinds(&["state", "load", "s.json"]), [Read]);
        assert_eq!(kinds(&["state", "save", "s.json"]), [Write]);
        assert_eq!(kinds(&["diff", "screenshot", "-b", "b.png", "-o", "d.png"]), [Read, Write]);
        assert_eq!(kinds(&["record", "restart", "v.webm"]), [Record]);
        assert_eq!(kinds(&["download", "@e1", "dl"]), [DownloadDir]);
        assert_eq!(kinds(&["wait", "--download", "f.zip"]), [Write]);
        assert_eq!(command_words(&v(&["--json", "record", "stop"])), (Some("record".into()), Some("stop".into())));
    }

    #[test]
    fn path_arguments_are_confined_to_the_cargo() {
        let d = tempfile::tempdir().unwrap();
        let cargo = d.path().join("bay-cargo-c");
        std::fs::create_dir_all(cargo.join("sub")).unwrap();
        std::fs::create_dir_all(d.path().join("bay-cargo-other")).unwrap();
        std::os::unix::fs::symlink(d.path().join("bay-cargo-other"), cargo.join("out")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", cargo.join("sub/pw")).unwrap();
        let c = cargo.display().to_string();
        let ok = |a: &str| translate_path(a, &cargo).unwrap();
        assert_eq!(ok("/workspace/a.png"), format!("{c}/a.png"));
        assert_eq!(ok("/workspace//sub/../b.png"), format!("{c}/b.png"));
        assert_eq!(ok("a.png"), format!("{c}/a.png"));
        assert_eq!(ok("./sub/new/x.pdf"), format!("{c}/sub/new/x.pdf"));
        assert_eq!(ok(&format!("{c}/sub/y.png")), format!("{c}/sub/y.png"));
        for bad in [
            "../x",
            "sub/../../x",
            "/workspace/../bay-cargo-other/x",
            "/etc/passwd",
            "/workspace",
            "",
            "/workspacex/a.png",
            "out/x.png",
            "/workspace/out/x.png",
            "sub/pw",
        ] {
            let e = translate_path(bad, &cargo).unwrap_err();
            assert!(e.contains("refused in shared mode"), "{bad}: {e}");
        }
        assert!(translate_path("out/x", &cargo).unwrap_err().contains("symbolic link"));
    }

    #[test]
    fn path_positions_follow_agent_browsers_parser() {
        let d = tempfile::tempdir().unwrap();
        let cargo = d.path().join("bay-cargo-c");
        std::fs::create_dir_all(&cargo).unwrap();
        let c = cargo.display().to_string();
        let run = |a: &[&str]| check_args(v(a), &cargo);
        let w = |p: &str| format!("{c}/{p}");
        assert_eq!(run(&["screenshot", "/workspace/a.png"]).unwrap(), v(&["screenshot", &w("a.png")]));
        assert_eq!(run(&["--full", "screenshot", "@e1", "b.png"]).unwrap(), v(&["--full", "screenshot", "@e1", &w("b.png")]));
        // A lone selector stays a selector; `--json true` is one flag.
        assert_eq!(run(&["screenshot", "#main"]).unwrap(), v(&["screenshot", "#main"]));
        assert_eq!(run(&["--json", "true", "screenshot"]).unwrap(), v(&["--json", "true", "screenshot"]));
        assert_eq!(run(&["pdf", "r.pdf"]).unwrap(), v(&["pdf", &w("r.pdf")]));
        assert_eq!(run(&["upload", "@e3", "a.txt", "/workspace/b.txt"]).unwrap(), v(&["upload", "@e3", &w("a.txt"), &w("b.txt")]));
        assert_eq!(run(&["download", "@e4", "f.zip"]).unwrap(), v(&["download", "@e4", &w("f.zip")]));
        assert_eq!(run(&["trace", "stop", "t.json"]).unwrap(), v(&["trace", "stop", &w("t.json")]));
        assert_eq!(run(&["profiler", "stop", "p.json"]).unwrap(), v(&["profiler", "stop", &w("p.json")]));
        assert_eq!(run(&["record", "start", "v.webm", "https://x"]).unwrap(), v(&["record", "start", &w("v.webm"), "https://x"]));
        assert_eq!(run(&["state", "save", "s.json"]).unwrap(), v(&["state", "save", &w("s.json")]));
        assert_eq!(run(&["state", "load", "/workspace/s.json"]).unwrap(), v(&["state", "load", &w("s.json")]));
        assert_eq!(
            run(&["diff", "screenshot", "-s", "-b", "--baseline", "b.png", "-o", "d.png"]).unwrap(),
            v(&["diff", "screenshot", "-s", "-b", "--baseline", &w("b.png"), "-o", &w("d.png")])
        );
        assert_eq!(run(&["wait", "--download", "f.zip"]).unwrap(), v(&["wait", "--download", &w("f.zip")]));
        assert_eq!(run(&["wait", "--text", "/etc/passwd", "-d"]).unwrap(), v(&["wait", "--text", "/etc/passwd", "-d"]));
        // Text arguments are not paths.
        for ok in [&["fill", "@e1", "/home/x"][..], &["type", "@e1", "../x"], &["eval", "1/2"], &["open", "/etc/passwd"]] {
            assert_eq!(run(ok).unwrap(), v(ok));
        }
        for bad in [
            &["screenshot", "/etc/shadow.png"][..],
            &["pdf", "../x.pdf"],
            &["upload", "@e1", "ok.txt", "/etc/passwd"],
            &["state", "load", "/tmp/s.json"],
        ] {
            assert!(run(bad).unwrap_err().contains("refused in shared mode"), "{bad:?}");
        }
    }

    #[test]
    fn output_names_the_workspace() {
        let cargo = Path::new("/cargos/bay-cargo-ab");
        assert_eq!(to_workspace_view("✓ Screenshot saved to /cargos/bay-cargo-ab/a.png", cargo), "✓ Screenshot saved to /workspace/a.png");
        assert_eq!(to_workspace_view("/cargos/bay-cargo-abc/x /cargos/bay-cargo-ab", cargo), "/cargos/bay-cargo-abc/x /workspace");
        assert_eq!(lexical_normalize(Path::new("/a/./b/../../..//c")), PathBuf::from("/c"));
    }
}
