//! Mapping client-supplied paths onto the workspace.
//!
//! Contract (Shipyard's `resolve_path`): relative paths are taken under the
//! workspace, absolute paths are accepted only when they already point into
//! it, and the *resolved* path (symlinks followed) must stay under the
//! canonical workspace, else 403.
//!
//! Note this is an API contract, not a security boundary: the server runs as
//! the same unprivileged user as every shell command and the Python kernel,
//! which can read anything that user can anyway. It keeps the filesystem API
//! honest (no `../../etc/passwd`, no writes through a symlink pointing out of
//! the workspace) and consistent with what Bay validates on its side.

use std::{
    collections::VecDeque,
    ffi::OsString,
    io,
    path::{Component, Path, PathBuf},
};

/// Symlink hops followed before giving up (Linux's own limit is 40).
const MAX_SYMLINKS: usize = 40;

#[derive(Debug)]
pub enum PathError {
    OutsideWorkspace,
    Invalid(String),
    Io(io::Error),
}

impl std::fmt::Display for PathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathError::OutsideWorkspace => write!(f, "Access denied: path outside workspace"),
            PathError::Invalid(m) => write!(f, "Invalid path: {m}"),
            PathError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// Resolves `input` against the workspace.
///
/// * `workspace` is the workspace as configured (e.g. `/workspace`), used to
///   accept absolute paths spelled the way clients know it;
/// * `workspace_canon` is its canonical form (what the checks compare to).
///
/// The result is canonical: every existing component is resolved through
/// symlinks (like `realpath`). The part that does not exist yet is appended
/// verbatim and may not contain `..` (it cannot be resolved safely). A
/// dangling symlink is followed, so writing through it cannot create a file
/// outside the workspace.
pub fn resolve_path(workspace: &Path, workspace_canon: &Path, input: &str) -> Result<PathBuf, PathError> {
    if input.contains('\0') {
        return Err(PathError::Invalid("path contains a NUL byte".into()));
    }
    let input_path = Path::new(input);
    let candidate = if input_path.is_absolute() {
        // Lexical pre-check: an absolute path must name the workspace (in its
        // configured or canonical spelling) before anything is resolved.
        let normalized = lexical_normalize(input_path);
        if !normalized.starts_with(workspace) && !normalized.starts_with(workspace_canon) {
            return Err(PathError::OutsideWorkspace);
        }
        input_path.to_path_buf()
    } else {
        workspace_canon.join(input_path)
    };
    let resolved = realpath_nonstrict(&candidate)?;
    if resolved.starts_with(workspace_canon) { Ok(resolved) } else { Err(PathError::OutsideWorkspace) }
}

/// Like [`resolve_path`] but does not follow a symlink in the *last*
/// component: deleting `link` must remove the link, not what it points to.
pub fn resolve_path_nofollow(workspace: &Path, workspace_canon: &Path, input: &str) -> Result<PathBuf, PathError> {
    // The workspace root itself (however spelled: ".", "/workspace/") has
    // no parent inside the workspace; callers decide what to do with it.
    if let Ok(p) = resolve_path(workspace, workspace_canon, input)
        && p == workspace_canon
    {
        return Ok(p);
    }
    let trimmed = input.trim_end_matches('/');
    let p = Path::new(trimmed);
    match (p.parent(), p.components().next_back()) {
        (Some(parent), Some(Component::Normal(name))) => {
            let parent_str = parent.to_str().unwrap_or(".");
            let parent_str = if parent_str.is_empty() { "." } else { parent_str };
            let parent_resolved = resolve_path(workspace, workspace_canon, parent_str)?;
            let full = parent_resolved.join(name);
            match std::fs::symlink_metadata(&full) {
                Ok(m) if m.file_type().is_symlink() => Ok(full),
                _ => resolve_path(workspace, workspace_canon, input),
            }
        }
        _ => resolve_path(workspace, workspace_canon, input),
    }
}

/// Collapses `.` and `..` without touching the disk (only for the lexical
/// pre-check of absolute paths; `..` at the root stays at the root).
fn lexical_normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::RootDir => out.push("/"),
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            Component::Prefix(_) => {}
        }
    }
    out
}

/// `realpath(3)` that tolerates a missing tail (Python's
/// `Path.resolve(strict=False)`), with `..` forbidden inside the missing tail.
fn realpath_nonstrict(path: &Path) -> Result<PathBuf, PathError> {
    let mut pending: VecDeque<OsString> = VecDeque::new();
    push_front_components(&mut pending, path);
    let mut resolved = PathBuf::from("/");
    let mut links = 0usize;
    // Once a component does not exist, everything after it is appended
    // lexically (nothing further exists to resolve).
    let mut missing = false;
    while let Some(c) = pending.pop_front() {
        if c == ".." {
            if missing {
                return Err(PathError::OutsideWorkspace);
            }
            resolved.pop();
            continue;
        }
        let next = resolved.join(&c);
        if missing {
            resolved = next;
            continue;
        }
        match std::fs::symlink_metadata(&next) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(PathError::Invalid("too many levels of symbolic links".into()));
                }
                let target = std::fs::read_link(&next).map_err(PathError::Io)?;
                if target.is_absolute() {
                    resolved = PathBuf::from("/");
                }
                push_front_components(&mut pending, &target);
            }
            Ok(_) => resolved = next,
            Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) => {
                // ENOTDIR: "file.txt/x" — let the actual operation report it.
                missing = true;
                resolved = next;
            }
            Err(e) => return Err(PathError::Io(e)),
        }
    }
    Ok(resolved)
}

/// Prepends `p`'s components (keeping `..`, dropping `/` and `.`) to `queue`.
fn push_front_components(queue: &mut VecDeque<OsString>, p: &Path) {
    let comps: Vec<OsString> = p
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect();
    for c in comps.into_iter().rev() {
        queue.push_front(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    struct Ws {
        _dir: tempfile::TempDir,
        ws: PathBuf,
        canon: PathBuf,
    }

    fn ws() -> Ws {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("workspace");
        std::fs::create_dir(&ws).unwrap();
        let canon = ws.canonicalize().unwrap();
        Ws { _dir: dir, ws, canon }
    }

    fn res(w: &Ws, p: &str) -> Result<PathBuf, PathError> {
        resolve_path(&w.ws, &w.canon, p)
    }

    fn denied(r: Result<PathBuf, PathError>) -> bool {
        matches!(r, Err(PathError::OutsideWorkspace))
    }

    #[test]
    fn relative_paths_land_in_workspace() {
        let w = ws();
        assert_eq!(res(&w, "a.txt").unwrap(), w.canon.join("a.txt"));
        assert_eq!(res(&w, ".").unwrap(), w.canon);
        assert_eq!(res(&w, "").unwrap(), w.canon);
        assert_eq!(res(&w, "./x/./y").unwrap(), w.canon.join("x/y"));
    }

    #[test]
    fn dotdot_escapes_are_denied() {
        let w = ws();
        assert!(denied(res(&w, "../etc/passwd")));
        assert!(denied(res(&w, "..")));
        assert!(denied(res(&w, "a/../../x")));
        // Inside the existing part `..` is fine as long as it stays inside.
        std::fs::create_dir(w.canon.join("d")).unwrap();
        assert_eq!(res(&w, "d/../b.txt").unwrap(), w.canon.join("b.txt"));
        // In the missing tail `..` is refused even if it would stay inside.
        assert!(denied(res(&w, "nope/../b.txt")));
    }

    #[test]
    fn absolute_paths_inside_and_outside() {
        let w = ws();
        let inside = format!("{}/sub/f.txt", w.ws.display());
        assert_eq!(res(&w, &inside).unwrap(), w.canon.join("sub/f.txt"));
        let canon_inside = format!("{}/f.txt", w.canon.display());
        assert_eq!(res(&w, &canon_inside).unwrap(), w.canon.join("f.txt"));
        assert!(denied(res(&w, "/etc/passwd")));
        assert!(denied(res(&w, "/")));
        // Prefix spoofing: /…/workspace-evil is not /…/workspace.
        let evil = format!("{}-evil/x", w.ws.display());
        assert!(denied(res(&w, &evil)));
        let traversal = format!("{}/../x", w.ws.display());
        assert!(denied(res(&w, &traversal)));
    }

    #[test]
    fn symlink_escape_is_denied() {
        let w = ws();
        symlink("/etc", w.canon.join("etc-link")).unwrap();
        assert!(denied(res(&w, "etc-link/passwd")));
        assert!(denied(res(&w, "etc-link")));
        assert!(denied(res(&w, "etc-link/does-not-exist/new.txt")));
        // Relative symlink climbing out.
        symlink("../..", w.canon.join("up")).unwrap();
        assert!(denied(res(&w, "up/x")));
        // A dangling link pointing outside must not allow creating the target.
        symlink("/tmp/ship-test-nonexistent-target", w.canon.join("dangling")).unwrap();
        assert!(denied(res(&w, "dangling")));
    }

    #[test]
    fn symlink_inside_workspace_is_followed() {
        let w = ws();
        std::fs::create_dir(w.canon.join("real")).unwrap();
        symlink("real", w.canon.join("alias")).unwrap();
        assert_eq!(res(&w, "alias/f.txt").unwrap(), w.canon.join("real/f.txt"));
        // Link loops are reported, not followed forever.
        symlink("loop", w.canon.join("loop")).unwrap();
        assert!(matches!(res(&w, "loop/x"), Err(PathError::Invalid(_))));
    }

    #[test]
    fn nonexistent_nested_path() {
        let w = ws();
        assert_eq!(res(&w, "a/b/c/d.txt").unwrap(), w.canon.join("a/b/c/d.txt"));
        std::fs::create_dir_all(w.canon.join("a/b")).unwrap();
        assert_eq!(res(&w, "a/b/c/d.txt").unwrap(), w.canon.join("a/b/c/d.txt"));
    }

    #[test]
    fn nul_byte_is_invalid() {
        let w = ws();
        assert!(matches!(res(&w, "a\0b"), Err(PathError::Invalid(_))));
    }

    #[test]
    fn nofollow_keeps_the_link_itself() {
        let w = ws();
        std::fs::write(w.canon.join("target.txt"), "x").unwrap();
        symlink("target.txt", w.canon.join("link.txt")).unwrap();
        symlink("/etc/passwd", w.canon.join("out")).unwrap();
        let r = resolve_path_nofollow(&w.ws, &w.canon, "link.txt").unwrap();
        assert_eq!(r, w.canon.join("link.txt"));
        // A link pointing outside can still be removed (it lives inside).
        let r = resolve_path_nofollow(&w.ws, &w.canon, "out").unwrap();
        assert_eq!(r, w.canon.join("out"));
        // Regular files behave like resolve_path; escapes are still denied.
        let r = resolve_path_nofollow(&w.ws, &w.canon, "target.txt").unwrap();
        assert_eq!(r, w.canon.join("target.txt"));
        assert!(denied(resolve_path_nofollow(&w.ws, &w.canon, "../x")));
        assert!(denied(resolve_path_nofollow(&w.ws, &w.canon, "out/x")));
        // The workspace root itself.
        assert_eq!(resolve_path_nofollow(&w.ws, &w.canon, ".").unwrap(), w.canon);
        let with_slash = format!("{}/", w.ws.display());
        assert_eq!(resolve_path_nofollow(&w.ws, &w.canon, &with_slash).unwrap(), w.canon);
    }
}
