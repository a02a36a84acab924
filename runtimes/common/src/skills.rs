//! Built-in skills: shipped read-only in the image, copied into the
//! workspace at startup (where the agent can open them), and listed in
//! `/meta`.

use std::{
    ffi::OsStr,
    fs::File,
    io,
    os::fd::{AsFd, BorrowedFd},
    path::Path,
};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use serde_json::{Value, json};

use crate::beneath::{Workspace, file_type, remove_dir_all_at};

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
/// Shipyard uses; values lose surrounding quotes, a BOM is ignored).
pub fn front_matter(text: &str) -> Vec<(String, String)> {
    let mut lines = text.trim_start_matches('\u{feff}').lines();
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

fn open_dir_nofollow(parent: BorrowedFd<'_>, name: &OsStr) -> io::Result<std::os::fd::OwnedFd> {
    Ok(rustix::fs::openat(parent, name, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())?)
}

fn mkdir_nofollow(parent: BorrowedFd<'_>, name: &OsStr) -> io::Result<std::os::fd::OwnedFd> {
    match rustix::fs::mkdirat(parent, name, Mode::from_bits_truncate(0o777)) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
        Err(e) => return Err(e.into()),
    }
    open_dir_nofollow(parent, name)
}

/// Copies each built-in skill to `<workspace>/skills/<name>`, replacing an
/// older copy of that skill (and leaving the agent's own skills alone).
/// Works by descriptor: a `skills` entry that is a symlink is not followed
/// (the copy fails instead of writing wherever it points).
pub fn install_skills(skills_dir: &Path, ws: &Workspace) -> io::Result<usize> {
    let entries = match std::fs::read_dir(skills_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let dest_root = mkdir_nofollow(ws.root_fd(), OsStr::new("skills"))?;
    let mut n = 0;
    for entry in entries.flatten() {
        if !entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            continue;
        }
        let name = entry.file_name();
        match rustix::fs::statat(&dest_root, &name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if file_type(&st) == FileType::Directory => remove_dir_all_at(dest_root.as_fd(), &name).map_err(to_io)?,
            Ok(_) => rustix::fs::unlinkat(&dest_root, &name, AtFlags::empty())?,
            Err(_) => {}
        }
        let dest = mkdir_nofollow(dest_root.as_fd(), &name)?;
        copy_tree_into(&entry.path(), dest.as_fd())?;
        n += 1;
    }
    Ok(n)
}

fn to_io(e: crate::beneath::PathError) -> io::Error {
    match e {
        crate::beneath::PathError::Io(e) => e,
        other => io::Error::other(other.to_string()),
    }
}

/// Recursive copy of the regular files and directories of `src` (a trusted
/// directory of the image) into the directory `dest`. Symlinks in `src` are
/// skipped so a skill cannot smuggle a link out of the workspace; entries of
/// `dest` are created without following symlinks.
pub fn copy_tree_into(src: &Path, dest: BorrowedFd<'_>) -> io::Result<()> {
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let ty = entry.file_type()?;
        let name = entry.file_name();
        if ty.is_dir() {
            let sub = mkdir_nofollow(dest, &name)?;
            copy_tree_into(&entry.path(), sub.as_fd())?;
        } else if ty.is_file() {
            let mut from = File::open(entry.path())?;
            let fd = rustix::fs::openat(
                dest,
                &name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_bits_truncate(0o644),
            )?;
            io::copy(&mut from, &mut File::from(fd))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_matter_parsing() {
        let fm = front_matter("---\nname: x\ndescription: \"Run: things\"\n---\nbody: no\n");
        assert_eq!(fm, vec![("name".into(), "x".into()), ("description".into(), "Run: things".into())]);
        assert_eq!(front_matter("\u{feff}---\nname: y\n---\n").len(), 1);
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

    #[test]
    fn skills_are_copied_per_skill() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("s1/sub")).unwrap();
        std::fs::write(src.join("s1/SKILL.md"), "new").unwrap();
        std::fs::write(src.join("s1/sub/x"), "x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.join("s1/link")).unwrap();
        let ws_path = dir.path().join("ws");
        std::fs::create_dir_all(ws_path.join("skills/s1")).unwrap();
        std::fs::write(ws_path.join("skills/s1/stale"), "old").unwrap();
        std::fs::create_dir_all(ws_path.join("skills/mine")).unwrap();
        let ws = Workspace::open(&ws_path).unwrap();
        assert_eq!(install_skills(&src, &ws).unwrap(), 1);
        assert_eq!(std::fs::read_to_string(ws_path.join("skills/s1/SKILL.md")).unwrap(), "new");
        assert!(ws_path.join("skills/s1/sub/x").exists());
        assert!(!ws_path.join("skills/s1/stale").exists());
        assert!(std::fs::symlink_metadata(ws_path.join("skills/s1/link")).is_err());
        assert!(ws_path.join("skills/mine").exists());
        assert_eq!(install_skills(&dir.path().join("missing"), &ws).unwrap(), 0);
    }

    #[test]
    fn a_symlinked_skills_dir_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("s1")).unwrap();
        std::fs::write(src.join("s1/SKILL.md"), "x").unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        let ws_path = dir.path().join("ws");
        std::fs::create_dir_all(&ws_path).unwrap();
        std::os::unix::fs::symlink(&outside, ws_path.join("skills")).unwrap();
        let ws = Workspace::open(&ws_path).unwrap();
        assert!(install_skills(&src, &ws).is_err());
        assert!(std::fs::read_dir(&outside).unwrap().next().is_none());
    }
}
