//! Race-free access to paths under the workspace.
//!
//! Contract (Shipyard's `resolve_path`, kept from the first Ship): relative
//! paths are taken under the workspace; absolute paths are accepted only when
//! they name the workspace (as configured, e.g. `/workspace`, or in its
//! canonical spelling); symlinks are followed, and those that stay inside the
//! workspace keep working (an absolute link target must name the workspace
//! too); anything that resolves outside is refused
//! ([`PathError::OutsideWorkspace`], 403 at the API). A missing tail is
//! allowed (a file about to be written) but may not contain `..`.
//!
//! Why file descriptors: resolving a path to a string and then opening that
//! string is a time-of-check/time-of-use race. Swapping a directory for a
//! symlink between the two steps let an attack read `/etc/passwd` and write
//! into `/tmp` through the old path-based check. So nothing here ever opens a
//! name that was checked earlier:
//!
//! * [`Workspace`] holds an `O_PATH` descriptor of the workspace root.
//! * The walk opens each component with `O_PATH|O_NOFOLLOW` relative to the
//!   descriptor of the directory before it and looks at what it got (`fstat`
//!   on the descriptor). A symlink is read with `readlinkat` on its own
//!   descriptor and its target is walked the same way: relative targets from
//!   the current directory, absolute ones from the root descriptor once the
//!   workspace prefix is stripped. `..` pops the stack of directory
//!   descriptors and never goes above the root. At most
//!   [`MAX_SYMLINK_HOPS`] links are followed.
//! * The walk ends at a directory descriptor plus the final name. Operations
//!   then act on that pair (`openat`, `mkdirat`, `unlinkat`, `renameat`) with
//!   `O_NOFOLLOW`, so a symlink planted after the walk makes the operation
//!   fail (`ELOOP`) instead of being followed; where following was wanted
//!   the whole walk is simply done again (bounded by [`MAX_RACE_RETRIES`]).
//!
//! `openat2(RESOLVE_BENEATH)` alone does not fit the contract: it refuses
//! every absolute symlink, and `RESOLVE_IN_ROOT` would reinterpret
//! `/workspace/x` as `<root>/workspace/x`. The descriptor walk needs no
//! kernel newer than 3.6 and no seccomp allowance beyond `openat`.
//!
//! What the walk relies on: a directory it holds a descriptor of cannot be
//! moved out of the workspace while it walks. In a sandbox the workspace is
//! its own mount (the cargo volume), and `rename(2)` never crosses a mount,
//! so that holds. (Ship and Gull run as the same unprivileged user as the
//! code they serve; this keeps the *API* from being a way out of the
//! workspace, it is not a sandbox against that user.)

use std::{
    collections::VecDeque,
    ffi::{OsStr, OsString},
    fs::File,
    io,
    os::{
        fd::{AsFd, BorrowedFd, OwnedFd},
        unix::ffi::OsStrExt,
    },
    path::{Component, Path, PathBuf},
};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};

/// Symlink hops followed before giving up (Linux's own limit is 40).
pub const MAX_SYMLINK_HOPS: usize = 40;
/// How often an operation re-walks a path after noticing that it changed
/// under it (a symlink appeared where the walk had seen none).
pub const MAX_RACE_RETRIES: usize = 32;

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

impl std::error::Error for PathError {}

impl From<io::Error> for PathError {
    fn from(e: io::Error) -> Self {
        PathError::Io(e)
    }
}

impl From<rustix::io::Errno> for PathError {
    fn from(e: rustix::io::Errno) -> Self {
        PathError::Io(e.into())
    }
}

impl PathError {
    /// The `io::ErrorKind` of an I/O failure (`None` for the other kinds).
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            PathError::Io(e) => Some(e.kind()),
            _ => None,
        }
    }
    fn errno(&self) -> Option<i32> {
        match self {
            PathError::Io(e) => e.raw_os_error(),
            _ => None,
        }
    }
}

fn errno_err(e: rustix::io::Errno) -> PathError {
    PathError::Io(e.into())
}

fn enoent() -> PathError {
    PathError::Io(io::Error::from_raw_os_error(libc::ENOENT))
}

/// The workspace root, held open.
#[derive(Debug)]
pub struct Workspace {
    root: OwnedFd,
    /// As clients spell it (e.g. `/workspace`).
    configured: PathBuf,
    /// Its canonical form (what paths are reported as).
    canon: PathBuf,
}

/// Where a walk ended: the deepest existing directory on the way, and the
/// components below it.
#[derive(Debug)]
pub struct Resolved {
    /// Descriptor (`O_PATH`) of that directory.
    dir: OwnedFd,
    /// Its path relative to the workspace root (symlinks resolved).
    dir_rel: PathBuf,
    /// Empty: the target is the workspace root itself (then `dir` is the
    /// root). One name: the target is that entry of `dir` (which may or may
    /// not exist; when following symlinks it was not a symlink during the
    /// walk). More: `tail[0]` did not exist, the rest is to be created.
    tail: Vec<OsString>,
}

impl Resolved {
    /// Path of the target relative to the workspace root.
    pub fn rel(&self) -> PathBuf {
        let mut p = self.dir_rel.clone();
        p.extend(&self.tail);
        p
    }
    pub fn is_root(&self) -> bool {
        self.tail.is_empty()
    }
    /// The descriptor of the directory holding the target and the target's
    /// name, when the target's directory exists.
    pub fn parent_and_name(&self) -> Option<(BorrowedFd<'_>, &OsStr)> {
        match self.tail.as_slice() {
            [name] => Some((self.dir.as_fd(), name.as_os_str())),
            _ => None,
        }
    }
    /// `lstat` of the target (`None` when it does not exist).
    pub fn lstat(&self) -> Result<Option<Stat>, PathError> {
        match self.tail.as_slice() {
            [] => Ok(Some(rustix::fs::fstat(&self.dir)?)),
            [name] => match rustix::fs::statat(&self.dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => Ok(Some(st)),
                Err(rustix::io::Errno::NOENT) => Ok(None),
                Err(e) => Err(errno_err(e)),
            },
            _ => Ok(None),
        }
    }
}

/// What the walk does with a symlink in the final component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Last {
    Follow,
    /// Keep the link itself (deleting `link` removes the link).
    NoFollow,
}

pub fn file_type(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

/// `O_CLOEXEC` always; `O_NOFOLLOW` on every final open.
fn final_flags(flags: OFlags) -> OFlags {
    flags | OFlags::CLOEXEC | OFlags::NOFOLLOW
}

fn is_eloop(e: &PathError) -> bool {
    e.errno() == Some(libc::ELOOP)
}

impl Workspace {
    /// Opens the workspace directory (which must exist).
    pub fn open(configured: &Path) -> io::Result<Self> {
        let canon = configured.canonicalize()?;
        let root = rustix::fs::open(&canon, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
        Ok(Self { root, configured: configured.to_path_buf(), canon })
    }

    pub fn canon(&self) -> &Path {
        &self.canon
    }
    pub fn configured(&self) -> &Path {
        &self.configured
    }
    pub fn root_fd(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }
    /// Absolute (canonical) path of a workspace-relative one, for answers.
    pub fn display(&self, rel: &Path) -> PathBuf {
        if rel.as_os_str().is_empty() { self.canon.clone() } else { self.canon.join(rel) }
    }

    /// Components of `p` below the workspace when `p` (absolute) names it.
    fn strip_workspace(&self, p: &Path) -> Option<Vec<OsString>> {
        let comps = |rest: &Path| components(rest);
        for base in [&self.configured, &self.canon] {
            if let Ok(rest) = p.strip_prefix(base) {
                return Some(comps(rest));
            }
        }
        // `/x/../workspace/a`: accepted when its lexical form names the
        // workspace (the old check); walked in that lexical form.
        let norm = lexical_normalize(p);
        for base in [&self.configured, &self.canon] {
            if let Ok(rest) = norm.strip_prefix(base) {
                return Some(comps(rest));
            }
        }
        None
    }

    /// Walks `input` (see the module docs).
    pub fn resolve(&self, input: &str, last: Last) -> Result<Resolved, PathError> {
        if input.contains('\0') {
            return Err(PathError::Invalid("path contains a NUL byte".into()));
        }
        let p = Path::new(input);
        let comps = if p.is_absolute() { self.strip_workspace(p).ok_or(PathError::OutsideWorkspace)? } else { components(p) };
        self.walk(comps.into(), last)
    }

    fn walk(&self, mut pending: VecDeque<OsString>, last: Last) -> Result<Resolved, PathError> {
        // Directories below the root, innermost last, with their names.
        let mut stack: Vec<(OwnedFd, OsString)> = Vec::new();
        let mut hops = 0usize;
        while let Some(c) = pending.pop_front() {
            if c == ".." {
                if stack.pop().is_none() {
                    return Err(PathError::OutsideWorkspace);
                }
                continue;
            }
            let is_last = pending.is_empty();
            let cur = stack.last().map(|(f, _)| f.as_fd()).unwrap_or(self.root.as_fd());
            let fd = match rustix::fs::openat(cur, &c, OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty()) {
                Ok(fd) => fd,
                Err(rustix::io::Errno::NOENT) => {
                    // Nothing below a missing component can be resolved:
                    // the rest is taken verbatim, and `..` in it refused.
                    if pending.iter().any(|c| c == "..") {
                        return Err(PathError::OutsideWorkspace);
                    }
                    let mut tail = vec![c];
                    tail.extend(pending);
                    return self.finish(stack, tail);
                }
                Err(e) => return Err(errno_err(e)),
            };
            let st = rustix::fs::fstat(&fd)?;
            match file_type(&st) {
                FileType::Directory => stack.push((fd, c)),
                FileType::Symlink if !(is_last && last == Last::NoFollow) => {
                    hops += 1;
                    if hops > MAX_SYMLINK_HOPS {
                        return Err(PathError::Invalid("too many levels of symbolic links".into()));
                    }
                    let target = rustix::fs::readlinkat(&fd, "", Vec::new())?;
                    let target = Path::new(OsStr::from_bytes(target.as_bytes()));
                    let comps = if target.is_absolute() {
                        stack.clear();
                        self.strip_workspace(target).ok_or(PathError::OutsideWorkspace)?
                    } else {
                        components(target)
                    };
                    for c in comps.into_iter().rev() {
                        pending.push_front(c);
                    }
                }
                _ if is_last => return self.finish(stack, vec![c]),
                _ => return Err(PathError::Io(io::Error::from_raw_os_error(libc::ENOTDIR))),
            }
        }
        // Ended on a directory: address it as (parent, name) unless it is
        // the root, so every target but the root has a parent to act in.
        match stack.pop() {
            Some((_, name)) => self.finish(stack, vec![name]),
            None => self.finish(stack, Vec::new()),
        }
    }

    fn finish(&self, mut stack: Vec<(OwnedFd, OsString)>, tail: Vec<OsString>) -> Result<Resolved, PathError> {
        let dir_rel: PathBuf = stack.iter().map(|(_, n)| n.as_os_str()).collect();
        let dir = match stack.pop() {
            Some((fd, _)) => fd,
            // A dup of the root: `Resolved` owns its descriptor.
            None => self.root.try_clone()?,
        };
        Ok(Resolved { dir, dir_rel, tail })
    }

    /// Re-walks on a detected race (see [`MAX_RACE_RETRIES`]).
    fn retrying<T>(&self, input: &str, last: Last, mut op: impl FnMut(Resolved) -> Result<T, PathError>) -> Result<T, PathError> {
        let mut tries = 0;
        loop {
            let r = self.resolve(input, last)?;
            match op(r) {
                Err(e) if is_eloop(&e) && last == Last::Follow && tries < MAX_RACE_RETRIES => {
                    tries += 1;
                }
                other => return other,
            }
        }
    }

    /// Opens an existing target with `flags` (no `O_CREAT`), following
    /// symlinks. Returns the descriptor and the target's workspace-relative
    /// path. With `O_PATH` the descriptor is checked not to be a symlink.
    pub fn open_existing(&self, input: &str, flags: OFlags) -> Result<(OwnedFd, PathBuf), PathError> {
        self.retrying(input, Last::Follow, |r| {
            let fd = match r.tail.as_slice() {
                [] => rustix::fs::openat(&r.dir, ".", flags | OFlags::CLOEXEC, Mode::empty())?,
                [name] => rustix::fs::openat(&r.dir, name, final_flags(flags), Mode::empty())?,
                _ => return Err(enoent()),
            };
            if flags.contains(OFlags::PATH) && file_type(&rustix::fs::fstat(&fd)?) == FileType::Symlink {
                // O_PATH|O_NOFOLLOW opens a link itself: one appeared.
                return Err(PathError::Io(io::Error::from_raw_os_error(libc::ELOOP)));
            }
            Ok((fd, r.rel()))
        })
    }

    /// Opens a regular file for reading; `O_NONBLOCK` so that a FIFO planted
    /// under the name cannot hang the server.
    pub fn open_read(&self, input: &str) -> Result<(File, Stat, PathBuf), PathError> {
        let (fd, rel) = self.open_existing(input, OFlags::RDONLY | OFlags::NONBLOCK)?;
        let st = rustix::fs::fstat(&fd)?;
        Ok((File::from(fd), st, rel))
    }

    /// Opens a directory for listing (`O_RDONLY|O_DIRECTORY`).
    pub fn open_dir(&self, input: &str) -> Result<(OwnedFd, PathBuf), PathError> {
        self.open_existing(input, OFlags::RDONLY | OFlags::DIRECTORY)
    }

    /// Resolves a target to be written (symlinks followed), without creating
    /// anything yet: callers look at [`Resolved::lstat`] first.
    pub fn resolve_write(&self, input: &str) -> Result<Resolved, PathError> {
        self.resolve(input, Last::Follow)
    }

    /// Creates the missing directories of a write target and returns the
    /// descriptor of the target's directory and its name. Re-walks when a
    /// created directory was swapped for something else meanwhile.
    pub fn create_parents(&self, input: &str) -> Result<(OwnedFd, OsString, PathBuf), PathError> {
        self.retrying(input, Last::Follow, |r| {
            let rel = r.rel();
            let Resolved { dir, tail, .. } = r;
            let Some((name, dirs)) = tail.split_last() else {
                return Err(PathError::Io(io::Error::from_raw_os_error(libc::EISDIR)));
            };
            let mut cur = dir;
            for d in dirs {
                match rustix::fs::mkdirat(&cur, d, Mode::from_bits_truncate(0o777)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(errno_err(e)),
                }
                // Not following: if something other than a directory stands
                // there now, fail (ENOTDIR) or re-walk (ELOOP: a symlink).
                cur = rustix::fs::openat(&cur, d, OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty()).map_err(
                    |e| match e {
                        rustix::io::Errno::NOTDIR => {
                            // O_PATH|O_NOFOLLOW|O_DIRECTORY on a symlink gives
                            // ENOTDIR; tell the two apart so a link re-walks.
                            match rustix::fs::statat(&cur, d, AtFlags::SYMLINK_NOFOLLOW) {
                                Ok(st) if file_type(&st) == FileType::Symlink => PathError::Io(io::Error::from_raw_os_error(libc::ELOOP)),
                                _ => errno_err(e),
                            }
                        }
                        e => errno_err(e),
                    },
                )?;
            }
            Ok((cur, name.clone(), rel.clone()))
        })
    }

    /// Opens (creating parents and, with `O_CREAT`, the file) a target for
    /// writing. `flags` should contain the access mode and any of `O_CREAT`,
    /// `O_EXCL`, `O_TRUNC`, `O_APPEND`.
    pub fn open_write(&self, input: &str, flags: OFlags, mode: u32) -> Result<(File, PathBuf), PathError> {
        let mut tries = 0;
        loop {
            let (dir, name, rel) = self.create_parents(input)?;
            match rustix::fs::openat(&dir, &name, final_flags(flags), Mode::from_bits_truncate(mode)) {
                Ok(fd) => return Ok((File::from(fd), rel)),
                // A symlink appeared at the name after the walk (without
                // O_EXCL: ELOOP). Walk again, which follows and checks it.
                Err(rustix::io::Errno::LOOP) if tries < MAX_RACE_RETRIES => tries += 1,
                Err(e) => return Err(errno_err(e)),
            }
        }
    }

    /// `mkdir -p` of a workspace directory; returns its descriptor
    /// (`O_PATH`) and relative path. Symlinks on the way are followed under
    /// the usual rules; the directory itself is never a symlink.
    pub fn ensure_dir(&self, input: &str) -> Result<(OwnedFd, PathBuf), PathError> {
        let mut tries = 0;
        loop {
            let r = self.resolve(input, Last::Follow)?;
            if r.is_root() {
                let rel = r.rel();
                return Ok((r.dir, rel));
            }
            let (dir, name, rel) = self.create_parents(input)?;
            match rustix::fs::mkdirat(&dir, &name, Mode::from_bits_truncate(0o777)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(errno_err(e)),
            }
            match rustix::fs::openat(&dir, &name, OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty()) {
                Ok(fd) => return Ok((fd, rel)),
                // O_PATH|O_NOFOLLOW|O_DIRECTORY on a link: ENOTDIR. A link
                // that appeared meanwhile is walked again.
                Err(rustix::io::Errno::NOTDIR)
                    if tries < MAX_RACE_RETRIES
                        && rustix::fs::statat(&dir, &name, AtFlags::SYMLINK_NOFOLLOW).is_ok_and(|st| file_type(&st) == FileType::Symlink) =>
                {
                    tries += 1
                }
                Err(e) => return Err(errno_err(e)),
            }
        }
    }

    /// Removes the target (a symlink itself, never what it points to; a
    /// directory with everything in it). Returns whether it was a directory.
    /// The root is refused with [`PathError::Invalid`].
    pub fn remove(&self, input: &str) -> Result<bool, PathError> {
        let r = self.resolve(input, Last::NoFollow)?;
        let Some((dir, name)) = r.parent_and_name() else {
            if r.is_root() {
                return Err(PathError::Invalid("refusing to delete the workspace root".into()));
            }
            return Err(enoent());
        };
        let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
        if file_type(&st) == FileType::Directory {
            remove_dir_all_at(dir, name)?;
            Ok(true)
        } else {
            rustix::fs::unlinkat(dir, name, AtFlags::empty())?;
            Ok(false)
        }
    }

    /// Sum of the sizes (`st_size`) of everything in the workspace but
    /// directories, hard links counted once: the workspace's apparent size.
    /// Walked by descriptor, never following symlinks; entries that vanish
    /// during the walk are skipped.
    pub fn apparent_size(&self) -> io::Result<u64> {
        let mut seen = std::collections::HashSet::new();
        let root = rustix::fs::openat(&self.root, ".", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
        Ok(dir_size(root, &mut seen, 0))
    }
}

/// Depth bound of the size walk and of recursive removal (each level holds a
/// descriptor).
const MAX_DEPTH: usize = 256;

fn dir_size(dir: OwnedFd, seen: &mut std::collections::HashSet<(u64, u64)>, depth: usize) -> u64 {
    let Ok(dirfd) = dir.try_clone() else {
        return 0;
    };
    let Ok(entries) = rustix::fs::Dir::new(dir) else {
        return 0;
    };
    let mut total = 0u64;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name.to_bytes() == b"." || name.to_bytes() == b".." {
            continue;
        }
        let Ok(st) = rustix::fs::statat(&dirfd, name, AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        if file_type(&st) == FileType::Directory {
            if depth < MAX_DEPTH
                && let Ok(sub) =
                    rustix::fs::openat(&dirfd, name, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
            {
                total += dir_size(sub, seen, depth + 1);
            }
            continue;
        }
        if st.st_nlink > 1 && !seen.insert((st.st_dev, st.st_ino)) {
            continue;
        }
        total += st.st_size.max(0) as u64;
    }
    total
}

/// `rm -rf name` relative to `parent`, by descriptor: a directory is opened
/// with `O_NOFOLLOW|O_DIRECTORY`, so a symlink swapped in is unlinked, never
/// descended into.
pub fn remove_dir_all_at(parent: BorrowedFd<'_>, name: &OsStr) -> Result<(), PathError> {
    remove_dir_all_depth(parent, name, 0)
}

fn remove_dir_all_depth(parent: BorrowedFd<'_>, name: &OsStr, depth: usize) -> Result<(), PathError> {
    if depth > MAX_DEPTH {
        return Err(PathError::Invalid("directory tree too deep to delete".into()));
    }
    let fd = match rustix::fs::openat(parent, name, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty()) {
        Ok(fd) => fd,
        // Not a directory (any more): remove the entry itself.
        Err(rustix::io::Errno::NOTDIR | rustix::io::Errno::LOOP) => {
            return rustix::fs::unlinkat(parent, name, AtFlags::empty()).map_err(errno_err);
        }
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        Err(e) => return Err(errno_err(e)),
    };
    let dirfd = fd.try_clone()?;
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::new(fd)? {
        let entry = entry?;
        let n = entry.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push((OsStr::from_bytes(n).to_os_string(), entry.file_type()));
        }
    }
    for (n, ty) in names {
        let r = if ty == FileType::Directory || ty == FileType::Unknown {
            remove_dir_all_depth(dirfd.as_fd(), &n, depth + 1)
        } else {
            rustix::fs::unlinkat(&dirfd, &n, AtFlags::empty()).map_err(errno_err)
        };
        match r {
            Err(e) if e.io_kind() == Some(io::ErrorKind::NotFound) => {}
            other => other?,
        }
    }
    match rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(errno_err(e)),
    }
}

/// Normal components and `..` of `p` (root and `.` dropped).
fn components(p: &Path) -> Vec<OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
}

/// Collapses `.` and `..` without touching the disk (`..` at `/` stays).
pub fn lexical_normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::RootDir => out.push("/"),
            Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{io::Read, os::unix::fs::symlink};

    struct Ws {
        _dir: tempfile::TempDir,
        ws: Workspace,
        canon: PathBuf,
        configured: PathBuf,
    }

    fn ws() -> Ws {
        let dir = tempfile::tempdir().unwrap();
        let configured = dir.path().join("workspace");
        std::fs::create_dir(&configured).unwrap();
        let ws = Workspace::open(&configured).unwrap();
        Ws { canon: ws.canon().to_path_buf(), configured, ws, _dir: dir }
    }

    /// What the old path-based resolver returned: the canonical target path.
    fn res(w: &Ws, p: &str) -> Result<PathBuf, PathError> {
        w.ws.resolve(p, Last::Follow).map(|r| w.ws.display(&r.rel()))
    }

    fn denied<T: std::fmt::Debug>(r: Result<T, PathError>) -> bool {
        matches!(r, Err(PathError::OutsideWorkspace))
    }

    fn read(w: &Ws, p: &str) -> Result<String, PathError> {
        let (mut f, _, _) = w.ws.open_read(p)?;
        let mut s = String::new();
        f.read_to_string(&mut s)?;
        Ok(s)
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
        assert_eq!(res(&w, "d/..").unwrap(), w.canon);
        // In the missing tail `..` is refused even if it would stay inside.
        assert!(denied(res(&w, "nope/../b.txt")));
    }

    #[test]
    fn absolute_paths_inside_and_outside() {
        let w = ws();
        let inside = format!("{}/sub/f.txt", w.configured.display());
        assert_eq!(res(&w, &inside).unwrap(), w.canon.join("sub/f.txt"));
        let canon_inside = format!("{}/f.txt", w.canon.display());
        assert_eq!(res(&w, &canon_inside).unwrap(), w.canon.join("f.txt"));
        assert!(denied(res(&w, "/etc/passwd")));
        assert!(denied(res(&w, "/")));
        // Prefix spoofing: /…/workspace-evil is not /…/workspace.
        let evil = format!("{}-evil/x", w.configured.display());
        assert!(denied(res(&w, &evil)));
        let traversal = format!("{}/../x", w.configured.display());
        assert!(denied(res(&w, &traversal)));
    }

    #[test]
    fn symlink_escape_is_denied() {
        let w = ws();
        symlink("/etc", w.canon.join("etc-link")).unwrap();
        assert!(denied(res(&w, "etc-link/passwd")));
        assert!(denied(res(&w, "etc-link")));
        assert!(denied(res(&w, "etc-link/does-not-exist/new.txt")));
        assert!(denied(read(&w, "etc-link/passwd")));
        assert!(denied(w.ws.open_write("etc-link/x", OFlags::WRONLY | OFlags::CREATE, 0o644)));
        // Relative symlink climbing out.
        symlink("../..", w.canon.join("up")).unwrap();
        assert!(denied(res(&w, "up/x")));
        // A dangling link pointing outside must not allow creating the target.
        symlink("/tmp/ship-test-nonexistent-target", w.canon.join("dangling")).unwrap();
        assert!(denied(res(&w, "dangling")));
        assert!(denied(w.ws.open_write("dangling", OFlags::WRONLY | OFlags::CREATE, 0o644)));
    }

    #[test]
    fn symlinks_inside_the_workspace_are_followed() {
        let w = ws();
        std::fs::create_dir(w.canon.join("real")).unwrap();
        std::fs::write(w.canon.join("real/f.txt"), "hi").unwrap();
        symlink("real", w.canon.join("alias")).unwrap();
        assert_eq!(res(&w, "alias/f.txt").unwrap(), w.canon.join("real/f.txt"));
        assert_eq!(read(&w, "alias/f.txt").unwrap(), "hi");
        // Absolute targets naming the workspace, in either spelling.
        symlink(w.configured.join("real"), w.canon.join("abs")).unwrap();
        assert_eq!(read(&w, "abs/f.txt").unwrap(), "hi");
        symlink(w.canon.join("real/f.txt"), w.canon.join("abs-file")).unwrap();
        assert_eq!(read(&w, "abs-file").unwrap(), "hi");
        // A dangling link inside: writing through it creates its target.
        symlink("real/new.txt", w.canon.join("to-new")).unwrap();
        let (_, rel) = w.ws.open_write("to-new", OFlags::WRONLY | OFlags::CREATE, 0o644).unwrap();
        assert_eq!(rel, Path::new("real/new.txt"));
        assert!(w.canon.join("real/new.txt").is_file());
        // Link loops are reported, not followed forever.
        symlink("loop", w.canon.join("loop")).unwrap();
        assert!(matches!(res(&w, "loop/x"), Err(PathError::Invalid(_))));
    }

    #[test]
    fn nonexistent_nested_path_and_parents() {
        let w = ws();
        assert_eq!(res(&w, "a/b/c/d.txt").unwrap(), w.canon.join("a/b/c/d.txt"));
        let (mut f, rel) = w.ws.open_write("a/b/c/d.txt", OFlags::WRONLY | OFlags::CREATE, 0o644).unwrap();
        std::io::Write::write_all(&mut f, b"deep").unwrap();
        assert_eq!(rel, Path::new("a/b/c/d.txt"));
        assert_eq!(read(&w, "a/b/c/d.txt").unwrap(), "deep");
        assert_eq!(res(&w, "a/b/c/d.txt").unwrap(), w.canon.join("a/b/c/d.txt"));
        // A file in the middle of a path.
        assert!(read(&w, "a/b/c/d.txt/x").is_err());
        assert!(w.ws.open_write("a/b/c/d.txt/x", OFlags::WRONLY | OFlags::CREATE, 0o644).is_err());
        assert_eq!(read(&w, "missing.txt").unwrap_err().io_kind(), Some(io::ErrorKind::NotFound));
    }

    #[test]
    fn ensure_dir_creates_and_follows_inside_links_only() {
        let w = ws();
        let (_, rel) = w.ws.ensure_dir(".browser/profile").unwrap();
        assert_eq!(rel, Path::new(".browser/profile"));
        assert!(w.canon.join(".browser/profile").is_dir());
        assert!(w.ws.ensure_dir(".browser/profile").is_ok());
        assert!(w.ws.ensure_dir("").is_ok());
        std::fs::create_dir(w.canon.join("real")).unwrap();
        symlink("real", w.canon.join("alias")).unwrap();
        assert_eq!(w.ws.ensure_dir("alias/p").unwrap().1, Path::new("real/p"));
        symlink("/tmp", w.canon.join("out")).unwrap();
        assert!(denied(w.ws.ensure_dir("out/p")));
        std::fs::write(w.canon.join("file"), "").unwrap();
        assert!(w.ws.ensure_dir("file").is_err());
    }

    #[test]
    fn nul_byte_is_invalid() {
        let w = ws();
        assert!(matches!(res(&w, "a\0b"), Err(PathError::Invalid(_))));
    }

    #[test]
    fn remove_keeps_link_targets_and_the_root() {
        let w = ws();
        let outside = w._dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), "x").unwrap();
        std::fs::write(w.canon.join("target.txt"), "x").unwrap();
        symlink("target.txt", w.canon.join("link.txt")).unwrap();
        symlink(&outside, w.canon.join("out")).unwrap();
        assert!(!w.ws.remove("link.txt").unwrap());
        assert!(w.canon.join("target.txt").exists());
        // A link pointing outside can still be removed (it lives inside).
        assert!(!w.ws.remove("out").unwrap());
        assert!(outside.join("keep").exists());
        assert!(denied(w.ws.remove("../x")));
        assert!(matches!(w.ws.remove("."), Err(PathError::Invalid(_))));
        let with_slash = format!("{}/", w.configured.display());
        assert!(matches!(w.ws.remove(&with_slash), Err(PathError::Invalid(_))));
        // A tree with a link to the outside inside it: only the link goes.
        std::fs::create_dir_all(w.canon.join("t/u")).unwrap();
        std::fs::write(w.canon.join("t/u/f"), "x").unwrap();
        symlink(&outside, w.canon.join("t/u/out")).unwrap();
        assert!(w.ws.remove("t").unwrap());
        assert!(!w.canon.join("t").exists());
        assert!(outside.join("keep").exists());
        assert_eq!(w.ws.remove("t").unwrap_err().io_kind(), Some(io::ErrorKind::NotFound));
    }

    #[test]
    fn apparent_size_counts_files_once() {
        let w = ws();
        std::fs::create_dir_all(w.canon.join("d/e")).unwrap();
        std::fs::write(w.canon.join("a"), vec![0u8; 1000]).unwrap();
        std::fs::write(w.canon.join("d/e/b"), vec![0u8; 234]).unwrap();
        std::fs::hard_link(w.canon.join("a"), w.canon.join("d/a2")).unwrap();
        // A link's size is its target's length; the target is not counted.
        symlink("/etc", w.canon.join("l")).unwrap();
        assert_eq!(w.ws.apparent_size().unwrap(), 1000 + 234 + 4);
    }
}
