//! Shared mode: file arguments go through a private staging directory.
//!
//! A sandbox controls its cargo and can swap any directory in it for a
//! symlink at any moment, so a cargo path handed to agent-browser (which
//! opens it later, following links) could land in another sandbox's cargo.
//! Instead agent-browser only ever sees paths in Gull's private run
//! directory (`shared::staging_dir`, mode 0700):
//!
//! * a file the command reads is copied out of the cargo first;
//! * a file the command writes is copied into the cargo afterwards;
//! * a recording (`record start|restart <path>`) is written when it stops,
//!   so it waits in the session's staging directory until `record
//!   stop|restart`;
//! * `download <sel> <dir>` only sets Chromium's download directory
//!   (agent-browser 0.19's `handle_download`): downloads land in the
//!   session's staging directory and are moved into `<dir>` after each
//!   `download` and `wait` command.
//!
//! Every copy on the cargo side goes through `runtime_common::beneath`
//! (descriptor walk, `O_NOFOLLOW`): links that stay in the cargo are
//! followed, anything that leads out of it is refused, and a link planted
//! while the copy runs makes it fail rather than be followed. Copies are
//! capped at [`MAX_COPY`] bytes. Paths in agent-browser's output are shown
//! as `/workspace/…` again.

use std::{
    fs::{File, OpenOptions},
    io::{self, Read},
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
};

use runtime_common::beneath::{Workspace, file_type};
use rustix::fs::{FileType, OFlags};

use crate::{
    browser::RunOutput,
    exec::INVALID_COMMAND_EXIT,
    shared::{self, FileKind},
};

/// Largest file copied into or out of a cargo (256 MiB).
pub(crate) const MAX_COPY: u64 = 256 << 20;
/// File arguments one command may name (each staged copy up to [`MAX_COPY`]).
pub(crate) const MAX_FILE_ARGS: usize = 4;

/// A staged file and where it belongs in the cargo (relative to it).
#[derive(Debug, Clone)]
struct Staged {
    path: PathBuf,
    rel: String,
}

impl Staged {
    fn shown(&self) -> (String, String) {
        (self.path.to_string_lossy().into_owned(), format!("/workspace/{}", self.rel))
    }
}

/// What a session's browser will write after the command that named it.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    recording: Option<Staged>,
    downloads: Option<Staged>,
}

/// One command's staged arguments. Its directory goes when it is dropped.
#[derive(Debug)]
pub(crate) struct Stage {
    dir: Option<PathBuf>,
    /// The argv with staged paths in place of the cargo's.
    pub args: Vec<String>,
    outputs: Vec<Staged>,
    record: Option<Staged>,
    downloads: Option<Staged>,
    /// `record stop|restart`: the pending recording is complete after it.
    stops_recording: bool,
    /// `download` or `wait`: finished downloads are moved into the cargo.
    collects_downloads: bool,
    shown: Vec<(String, String)>,
}

impl Drop for Stage {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// `mkdir -p` with mode 0700 (Gull's own directories).
pub(crate) fn private_dir(p: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(p)
}

impl Stage {
    /// Stages the path arguments of `args` (already checked by
    /// `shared::check_args`, so they are absolute paths in `cargo_dir`) in
    /// `root` (the session's staging directory); `n` numbers the call. An
    /// error is the stderr of an exit code 2 answer.
    pub(crate) fn prepare(root: &Path, n: u64, ws: &Workspace, cargo_dir: &Path, mut args: Vec<String>) -> Result<Self, String> {
        let files = shared::path_args(&args);
        if files.len() > MAX_FILE_ARGS {
            // Each is copied (up to MAX_COPY): bound what one call stages.
            return Err(format!("At most {MAX_FILE_ARGS} file arguments per command in shared mode, not {}", files.len()));
        }
        let (verb, sub) = shared::command_words(&args);
        let mut st = Stage {
            dir: None,
            args: Vec::new(),
            outputs: Vec::new(),
            record: None,
            downloads: None,
            stops_recording: verb.as_deref() == Some("record") && matches!(sub.as_deref(), Some("stop" | "restart")),
            collects_downloads: matches!(verb.as_deref(), Some("download" | "wait")),
            shown: Vec::new(),
        };
        let io_err = |e: io::Error| format!("Cannot stage a file argument: {e}");
        for (k, (i, kind)) in files.into_iter().enumerate() {
            let rel = rel_in_cargo(&args[i], cargo_dir)?;
            let name = Path::new(&rel).file_name().ok_or_else(|| format!("Path `{}` names no file", args[i]))?.to_owned();
            let staged = match kind {
                // Chromium reads a file input's file when the page submits
                // it, after this command: an upload's copy stays until the
                // sandbox's session is deleted.
                FileKind::Read if verb.as_deref() == Some("upload") => {
                    let dir = root.join(format!("upload-{n}")).join(k.to_string());
                    private_dir(&dir).map_err(io_err)?;
                    dir.join(&name)
                }
                FileKind::Read | FileKind::Write => {
                    let dir = st.dir.get_or_insert_with(|| root.join(format!("call-{n}"))).join(k.to_string());
                    private_dir(&dir).map_err(io_err)?;
                    dir.join(&name)
                }
                FileKind::Record => {
                    let dir = root.join(format!("record-{n}"));
                    private_dir(&dir).map_err(io_err)?;
                    dir.join(&name)
                }
                FileKind::DownloadDir => {
                    let dir = root.join("downloads");
                    private_dir(&dir).map_err(io_err)?;
                    dir
                }
            };
            let s = Staged { path: staged, rel };
            match kind {
                FileKind::Read => copy_in(ws, &s.rel, &s.path)?,
                FileKind::Write => st.outputs.push(s.clone()),
                FileKind::Record => st.record = Some(s.clone()),
                FileKind::DownloadDir => st.downloads = Some(s.clone()),
            }
            st.shown.push(s.shown());
            args[i] = s.path.to_string_lossy().into_owned();
        }
        st.args = args;
        Ok(st)
    }

    /// After the command: copies what it wrote into the cargo, updates the
    /// session's pending files, and shows staged paths as `/workspace/…`.
    /// A refused copy turns a success into exit code 2.
    pub(crate) fn finish(mut self, ws: &Workspace, mut out: RunOutput, pending: &mut Pending) -> RunOutput {
        let mut errors = Vec::new();
        let mut shown = std::mem::take(&mut self.shown);
        let save = |s: &Staged, errors: &mut Vec<String>| {
            if let Err(e) = copy_out(&s.path, ws, &s.rel) {
                errors.push(format!("Cannot save /workspace/{}: {e}", s.rel));
            }
        };
        for s in &self.outputs {
            save(s, &mut errors);
        }
        if self.stops_recording
            && let Some(r) = pending.recording.take()
        {
            save(&r, &mut errors);
            shown.push(r.shown());
            if let Some(dir) = r.path.parent() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
        if let Some(r) = self.record.take() {
            if out.exit_code == 0 {
                pending.recording = Some(r);
            } else if let Some(dir) = r.path.parent() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
        if let Some(d) = self.downloads.take().filter(|_| out.exit_code == 0) {
            pending.downloads = Some(d);
        }
        if let Some(d) = pending.downloads.as_ref().filter(|_| self.collects_downloads) {
            collect_downloads(d, ws, &mut errors);
        }
        shown.extend(pending.recording.iter().chain(&pending.downloads).map(Staged::shown));
        // Longest first, so a download directory never cuts a longer path.
        shown.sort_by_key(|(staged, _)| std::cmp::Reverse(staged.len()));
        for (staged, view) in &shown {
            out.stdout = out.stdout.replace(staged.as_str(), view);
            out.stderr = out.stderr.replace(staged.as_str(), view);
        }
        if !errors.is_empty() {
            if out.exit_code == 0 {
                out.exit_code = INVALID_COMMAND_EXIT;
            }
            for e in errors {
                if !out.stderr.is_empty() && !out.stderr.ends_with('\n') {
                    out.stderr.push('\n');
                }
                out.stderr.push_str(&e);
            }
        }
        out
    }
}

/// A checked path argument (absolute, in the cargo) relative to the cargo.
fn rel_in_cargo(arg: &str, cargo_dir: &Path) -> Result<String, String> {
    Path::new(arg)
        .strip_prefix(shared::lexical_normalize(cargo_dir))
        .ok()
        .map(|r| r.to_string_lossy().into_owned())
        .filter(|r| !r.is_empty())
        .ok_or_else(|| format!("Path `{arg}` is refused in shared mode: it must name a file inside /workspace"))
}

/// Moves finished downloads (Chromium's `.crdownload` files are still being
/// written) from the staging directory into the cargo directory asked for.
fn collect_downloads(d: &Staged, ws: &Workspace, errors: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(&d.path) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".crdownload") || !e.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let rel = format!("{}/{name}", d.rel);
        match copy_out(&e.path(), ws, &rel) {
            Ok(_) => {
                let _ = std::fs::remove_file(e.path());
            }
            Err(err) => errors.push(format!("Cannot save the download /workspace/{rel}: {err}")),
        }
    }
}

/// Copies a regular file of the cargo to `dest` (a new staging file).
fn copy_in(ws: &Workspace, rel: &str, dest: &Path) -> Result<(), String> {
    let fail = |e: String| format!("Cannot read /workspace/{rel}: {e}");
    let (mut src, st, _) = ws.open_read(rel).map_err(|e| fail(e.to_string()))?;
    if file_type(&st) != FileType::RegularFile {
        return Err(fail("not a regular file".into()));
    }
    if st.st_size.max(0) as u64 > MAX_COPY {
        return Err(fail(format!("larger than {} MiB", MAX_COPY >> 20)));
    }
    let mut dst =
        OpenOptions::new().write(true).create_new(true).mode(0o600).custom_flags(libc::O_NOFOLLOW).open(dest).map_err(|e| fail(e.to_string()))?;
    copy_capped(&mut src, &mut dst).map_err(fail)
}

/// Copies a staged file into the cargo at `rel` (parents created beneath
/// the cargo). `Ok(false)`: the command wrote nothing there.
fn copy_out(src: &Path, ws: &Workspace, rel: &str) -> Result<bool, String> {
    let mut src = match OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(src) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e.to_string()),
    };
    let md = src.metadata().map_err(|e| e.to_string())?;
    if !md.is_file() {
        return Err("the browser did not write a regular file".into());
    }
    if md.len() > MAX_COPY {
        return Err(format!("larger than {} MiB", MAX_COPY >> 20));
    }
    // O_NONBLOCK: a FIFO planted at the name fails (ENXIO) instead of
    // blocking Gull until someone reads it.
    let (mut dst, _) = ws.open_write(rel, OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NONBLOCK, 0o644).map_err(|e| e.to_string())?;
    if !dst.metadata().is_ok_and(|m| m.is_file()) {
        return Err("not a regular file".into());
    }
    copy_capped(&mut src, &mut dst)?;
    Ok(true)
}

fn copy_capped(src: &mut File, dst: &mut File) -> Result<(), String> {
    let n = io::copy(&mut src.take(MAX_COPY + 1), dst).map_err(|e| e.to_string())?;
    if n > MAX_COPY {
        return Err(format!("larger than {} MiB", MAX_COPY >> 20));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        browser::{AgentBrowser, Browser},
        config::Config,
        shared::{SandboxTarget, resolve_target},
    };
    use std::{
        os::unix::fs::{PermissionsExt, symlink},
        sync::Arc,
        time::Duration,
    };

    struct Env {
        d: tempfile::TempDir,
        ab: AgentBrowser,
        t: SandboxTarget,
    }

    impl Env {
        fn cargo(&self) -> &Path {
            &self.t.cargo_dir
        }
        fn outside(&self) -> PathBuf {
            self.d.path().join("outside")
        }
        async fn run(&self, args: &[&str]) -> RunOutput {
            // As `exec.rs` does: checked and translated first.
            match shared::check_args(args.iter().map(|a| a.to_string()).collect(), self.cargo()) {
                Ok(args) => self.ab.run(Some(&self.t), args, Duration::from_secs(5)).await,
                Err(e) => RunOutput::failed(INVALID_COMMAND_EXIT, e),
            }
        }
        /// Call directories left in the session's staging directory.
        fn leftover_calls(&self) -> usize {
            let dir = self.d.path().join("run/staging/sb");
            std::fs::read_dir(dir).map(|rd| rd.flatten().filter(|e| e.file_name().to_string_lossy().starts_with("call-")).count()).unwrap_or(0)
        }
    }

    /// Shared mode over a fake agent-browser that does what the command
    /// says with the path it is given (`$STATE` remembers a path between
    /// calls, like the daemon does); `plant` runs first, as the sandbox
    /// racing its own command would.
    fn env(plant: &str) -> Env {
        let d = tempfile::tempdir().unwrap();
        let cargo = d.path().join("cargos/bay-cargo-c1");
        std::fs::create_dir_all(&cargo).unwrap();
        std::fs::create_dir_all(d.path().join("outside")).unwrap();
        let bin = d.path().join("agent-browser");
        let script = format!(
            r#"#!/bin/sh
shift 2
C='{cargo}'; O='{outside}'; STATE='{state}'
{plant}
case "$1" in
  screenshot|pdf) printf 'image' > "$2"; echo "Saved to $2" ;;
  upload) case "$3" in "$C"*) echo "saw a cargo path"; exit 9 ;; esac; cat "$3"; echo " from $3" ;;
  record) if [ "$2" = stop ]; then printf 'video' > "$(cat "$STATE")"; echo "Recording saved to $(cat "$STATE")"; else echo "$3" > "$STATE"; echo "Recording to $3"; fi ;;
  download) echo "$3" > "$STATE"; echo "Downloads go to $3" ;;
  wait) printf 'done' > "$(cat "$STATE")/guid-1"; printf 'part' > "$(cat "$STATE")/guid-2.crdownload" ;;
esac
"#,
            cargo = cargo.display(),
            outside = d.path().join("outside").display(),
            state = d.path().join("state").display(),
        );
        std::fs::write(&bin, script).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let vars = [
            ("GULL_MODE", "shared".to_string()),
            ("GULL_AGENT_BROWSER_BIN", bin.to_string_lossy().into_owned()),
            ("BAY_WORKSPACE_PATH", d.path().join("ws").to_string_lossy().into_owned()),
            ("AGENT_BROWSER_SOCKET_DIR", d.path().join("sock").to_string_lossy().into_owned()),
            ("GULL_CARGOS_DIR", d.path().join("cargos").to_string_lossy().into_owned()),
            ("GULL_RUN_DIR", d.path().join("run").to_string_lossy().into_owned()),
        ];
        let cfg = Config::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())).unwrap();
        let ws = Arc::new(cfg.prepare_dirs().unwrap());
        let t = resolve_target(cfg.shared.as_ref().unwrap(), Some("sb"), Some("c1")).unwrap().unwrap();
        Env { ab: AgentBrowser::new(Arc::new(cfg), ws), t, d }
    }

    #[tokio::test]
    async fn written_files_are_copied_into_the_cargo() {
        let e = env("");
        let out = e.run(&["screenshot", "/workspace/sub/dir/shot.png"]).await;
        assert_eq!((out.exit_code, out.stdout.as_str()), (0, "Saved to /workspace/sub/dir/shot.png\n"), "{out:?}");
        assert_eq!(std::fs::read_to_string(e.cargo().join("sub/dir/shot.png")).unwrap(), "image");
        // An existing file is replaced; the staging directory is gone.
        let out = e.run(&["pdf", "sub/dir/shot.png"]).await;
        assert_eq!(out.exit_code, 0, "{out:?}");
        assert_eq!(e.leftover_calls(), 0);
    }

    #[tokio::test]
    async fn a_symlink_planted_during_the_command_is_not_followed_out() {
        // The final name, pointing out of the cargo.
        let e = env(r#"ln -s "$O/victim" "$C/shot.png""#);
        let out = e.run(&["screenshot", "/workspace/shot.png"]).await;
        assert_eq!(out.exit_code, 2, "{out:?}");
        assert!(out.stderr.contains("Cannot save /workspace/shot.png: Access denied"), "{}", out.stderr);
        assert!(!e.outside().join("victim").exists());
        assert_eq!(e.leftover_calls(), 0);
        // A directory on the way, swapped for a link out.
        let e = env(r#"ln -s "$O" "$C/d""#);
        let out = e.run(&["screenshot", "/workspace/d/x.png"]).await;
        assert_eq!(out.exit_code, 2, "{out:?}");
        assert!(!e.outside().join("x.png").exists());
        // A link that stays in the cargo leads to a regular file there.
        let e = env(r#"ln -s real.png "$C/in.png""#);
        let out = e.run(&["screenshot", "/workspace/in.png"]).await;
        assert_eq!(out.exit_code, 0, "{out:?}");
        assert!(std::fs::symlink_metadata(e.cargo().join("real.png")).unwrap().file_type().is_file());
        // A FIFO there fails at once instead of blocking.
        let e = env(r#"mkfifo "$C/f.png""#);
        let out = e.run(&["screenshot", "/workspace/f.png"]).await;
        assert_eq!(out.exit_code, 2, "{out:?}");
    }

    #[tokio::test]
    async fn read_files_are_staged_copies() {
        let e = env("");
        std::fs::write(e.cargo().join("a.txt"), "hello").unwrap();
        let out = e.run(&["upload", "@e1", "/workspace/a.txt"]).await;
        // The fake refuses cargo paths; it printed the staged one, shown as
        // the workspace path.
        assert_eq!((out.exit_code, out.stdout.as_str()), (0, "hello from /workspace/a.txt\n"), "{out:?}");
        assert_eq!(e.leftover_calls(), 0);
        // The page reads an uploaded file later: its copy stays (until DELETE).
        let kept: Vec<_> = std::fs::read_dir(e.d.path().join("run/staging/sb"))
            .unwrap()
            .flatten()
            .filter(|d| d.file_name().to_string_lossy().starts_with("upload-"))
            .collect();
        assert_eq!(kept.len(), 1);
        assert_eq!(std::fs::read_to_string(kept[0].path().join("0/a.txt")).unwrap(), "hello");
        // Read through the cargo's descriptor: a link out is refused.
        symlink("/etc/passwd", e.cargo().join("pw")).unwrap();
        let ws = Workspace::open(e.cargo()).unwrap();
        let root = e.d.path().join("run/staging/sb");
        let args = vec!["upload".into(), "@e1".into(), e.cargo().join("pw").to_string_lossy().into_owned()];
        let err = Stage::prepare(&root, 99, &ws, e.cargo(), args).unwrap_err();
        assert!(err.contains("Cannot read /workspace/pw: Access denied"), "{err}");
        // Too large (a sparse file).
        std::fs::File::create(e.cargo().join("big")).unwrap().set_len(MAX_COPY + 1).unwrap();
        let out = e.run(&["upload", "@e1", "big"]).await;
        assert_eq!(out.exit_code, 2);
        assert!(out.stderr.contains("larger than 256 MiB"), "{}", out.stderr);
        assert_eq!(e.leftover_calls(), 0);
    }

    #[tokio::test]
    async fn recordings_and_downloads_arrive_later() {
        let e = env("");
        let out = e.run(&["record", "start", "/workspace/v.webm"]).await;
        assert_eq!((out.exit_code, out.stdout.as_str()), (0, "Recording to /workspace/v.webm\n"), "{out:?}");
        assert!(!e.cargo().join("v.webm").exists());
        let out = e.run(&["record", "stop"]).await;
        assert_eq!((out.exit_code, out.stdout.as_str()), (0, "Recording saved to /workspace/v.webm\n"), "{out:?}");
        assert_eq!(std::fs::read_to_string(e.cargo().join("v.webm")).unwrap(), "video");

        let out = e.run(&["download", "@e1", "/workspace/dl"]).await;
        assert_eq!((out.exit_code, out.stdout.as_str()), (0, "Downloads go to /workspace/dl\n"), "{out:?}");
        let out = e.run(&["wait", "--download"]).await;
        assert_eq!(out.exit_code, 0, "{out:?}");
        assert_eq!(std::fs::read_to_string(e.cargo().join("dl/guid-1")).unwrap(), "done");
        assert!(!e.cargo().join("dl/guid-2.crdownload").exists());
        // Deleting the session removes everything staged.
        e.ab.close("sb").await;
        assert!(!e.d.path().join("run/staging/sb").exists());
    }
}
