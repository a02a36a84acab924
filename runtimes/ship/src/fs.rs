//! Filesystem endpoints (`/fs/*`), wire-compatible with Shipyard's Ship.
//!
//! Text semantics follow Python's text mode, which Shipyard uses: reading
//! translates `\r\n` and lone `\r` to `\n` (so the `old_string` an agent
//! copies out of `read_file` also matches in `edit_file`).
//!
//! Every path goes through the workspace descriptor
//! (`runtimes/common/src/beneath.rs`): a target is resolved and opened by
//! descriptor, and everything after that (stat, read, write, truncate,
//! rename, unlink, listing) acts on descriptors, so swapping a directory for
//! a symlink mid-request cannot redirect it outside the workspace. Writes
//! are checked against the cargo limit (`quota.rs`).

use std::{
    ffi::OsStr,
    fs::File,
    io::{Read, Seek, Write},
    os::{
        fd::{AsFd, OwnedFd},
        unix::{ffi::OsStrExt, fs::PermissionsExt},
    },
    path::{Path, PathBuf},
    sync::Arc,
};

use axum::{
    Json,
    body::Body,
    extract::{Multipart, State, multipart::MultipartRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use runtime_common::{
    beneath::{Last, PathError, Workspace, file_type},
    error::{ApiJson, ApiQuery, AppError, blocking},
    limits::MAX_TEXT_FILE,
};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tracing::{info, warn};
use uuid::Uuid;

use crate::{
    AppState,
    quota::{Quota, StreamCharge},
};

/// Maps a failed filesystem step: path errors keep their own answer (403
/// outside the workspace, 400 invalid), permission problems are 403, the
/// rest 500. Callers handle "not found" and friends first.
fn io_err(what: &str, e: PathError) -> AppError {
    match e {
        PathError::Io(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            AppError::new(StatusCode::FORBIDDEN, format!("{what}: permission denied"))
        }
        PathError::Io(e) => AppError::internal(format!("{what}: {e}")),
        other => other.into(),
    }
}

fn errno_of(e: &PathError) -> Option<i32> {
    match e {
        PathError::Io(e) => e.raw_os_error(),
        _ => None,
    }
}

fn is_not_found(e: &PathError) -> bool {
    e.io_kind() == Some(std::io::ErrorKind::NotFound)
}

// --- encodings -------------------------------------------------------------

pub(crate) enum Enc {
    Utf8,
    Utf8Sig,
    Latin1,
    Ascii,
}

pub(crate) fn encoding(name: &str) -> Result<Enc, AppError> {
    let n = name.trim().to_ascii_lowercase().replace('_', "-");
    match n.as_str() {
        "utf-8" | "utf8" | "u8" => Ok(Enc::Utf8),
        "utf-8-sig" => Ok(Enc::Utf8Sig),
        "latin-1" | "latin1" | "iso-8859-1" | "iso8859-1" | "l1" => Ok(Enc::Latin1),
        "ascii" | "us-ascii" => Ok(Enc::Ascii),
        _ => Err(AppError::bad_request(format!("Unsupported encoding: {name}"))),
    }
}

/// Bytes → text; invalid sequences become U+FFFD instead of failing.
fn decode(bytes: &[u8], enc: &Enc) -> String {
    match enc {
        Enc::Utf8 | Enc::Ascii => String::from_utf8_lossy(bytes).into_owned(),
        Enc::Utf8Sig => String::from_utf8_lossy(bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)).into_owned(),
        Enc::Latin1 => bytes.iter().map(|&b| b as char).collect(),
    }
}

fn encode(text: &str, enc: &Enc) -> Result<Vec<u8>, AppError> {
    match enc {
        Enc::Utf8 | Enc::Utf8Sig => Ok(text.as_bytes().to_vec()),
        Enc::Latin1 | Enc::Ascii => {
            let max = if matches!(enc, Enc::Ascii) { 0x7f } else { 0xff };
            text.chars()
                .map(|c| {
                    u8::try_from(c as u32)
                        .ok()
                        .filter(|b| u32::from(*b) <= max)
                        .ok_or_else(|| AppError::bad_request(format!("Character {c:?} cannot be encoded")))
                })
                .collect()
        }
    }
}

/// Python universal newlines: `\r\n` and lone `\r` become `\n`.
pub(crate) fn normalize_newlines(s: &str) -> String {
    if !s.contains('\r') {
        return s.to_string();
    }
    s.replace("\r\n", "\n").replace('\r', "\n")
}

/// Python `lines[offset-1 : offset-1+limit]` over `readlines()`.
pub(crate) fn slice_lines(text: &str, offset: Option<i64>, limit: Option<i64>) -> String {
    if offset.is_none() && limit.is_none() {
        return text.to_string();
    }
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let len = lines.len() as i64;
    let offset = offset.unwrap_or(1);
    let start = if offset > 0 { offset - 1 } else { 0 };
    if start >= len {
        return String::new();
    }
    let end = start + limit.unwrap_or(len);
    // A negative end counts from the back, as in Python slicing.
    let end = if end < 0 { (len + end).max(0) } else { end.min(len) };
    if end <= start {
        return String::new();
    }
    lines[start as usize..end as usize].concat()
}

fn too_large_to_read(size: u64) -> AppError {
    AppError::too_large(format!("File is too large to read as text ({size} bytes > {MAX_TEXT_FILE} bytes); use /fs/download"))
}

/// Checks an opened file is a regular one small enough to read as text.
fn check_text_file(st: &Stat, display: &str) -> Result<u64, AppError> {
    if file_type(st) != FileType::RegularFile {
        return Err(AppError::bad_request(format!("Path is not a file: {display}")));
    }
    let size = st.st_size.max(0) as u64;
    if size > MAX_TEXT_FILE {
        return Err(too_large_to_read(size));
    }
    Ok(size)
}

/// Reads at most [`MAX_TEXT_FILE`] bytes (the file may grow after `fstat`).
fn read_capped(f: &mut File) -> Result<Vec<u8>, AppError> {
    let mut bytes = Vec::new();
    f.take(MAX_TEXT_FILE + 1).read_to_end(&mut bytes).map_err(|e| io_err("Failed to read file", e.into()))?;
    if bytes.len() as u64 > MAX_TEXT_FILE {
        return Err(too_large_to_read(bytes.len() as u64));
    }
    Ok(bytes)
}

/// `read_file`'s core: the text, the file's size and its canonical path.
pub(crate) fn read_text(ws: &Workspace, path: &str, enc: &Enc) -> Result<(String, u64, PathBuf), AppError> {
    let (mut f, st, rel) = match ws.open_read(path) {
        Ok(v) => v,
        Err(e) if is_not_found(&e) => {
            return Err(AppError::not_found(format!("File not found: {path}")));
        }
        Err(e) => return Err(io_err("Failed to read file", e)),
    };
    let size = check_text_file(&st, path)?;
    let bytes = read_capped(&mut f)?;
    Ok((normalize_newlines(&decode(&bytes, enc)), size, ws.display(&rel)))
}

/// `write_file`'s core: writes `bytes` (appending or replacing), creating
/// parent directories. Returns the canonical path and the new size.
pub(crate) fn write_bytes(ws: &Workspace, quota: &Quota, path: &str, bytes: &[u8], append: bool) -> Result<(PathBuf, u64), AppError> {
    let old = ws.resolve_write(path)?.lstat().map_err(|e| io_err("Failed to write file", e))?;
    if old.as_ref().is_some_and(|st| file_type(st) == FileType::Directory) {
        return Err(AppError::bad_request(format!("Path is a directory: {path}")));
    }
    let old_len = match &old {
        Some(st) if file_type(st) == FileType::RegularFile && !append => st.st_size.max(0) as u64,
        _ => 0,
    };
    let new = bytes.len() as u64;
    quota.admit(new, old_len)?;
    let mode = if append { OFlags::APPEND } else { OFlags::TRUNC };
    let written = ws
        .open_write(path, OFlags::WRONLY | OFlags::CREATE | mode, 0o666)
        .map_err(|e| match errno_of(&e) {
            Some(libc::EISDIR) => AppError::bad_request(format!("Path is a directory: {path}")),
            _ => io_err("Failed to write file", e),
        })
        .and_then(|(mut f, rel)| {
            f.write_all(bytes).map_err(|e| io_err("Failed to write file", e.into()))?;
            let size = f.metadata().map(|m| m.len()).unwrap_or(0);
            Ok((ws.display(&rel), size))
        });
    if written.is_err() {
        quota.refund(new, old_len);
    }
    written
}

// --- handlers ---------------------------------------------------------------

fn default_mode() -> u32 {
    0o644
}
fn default_encoding() -> String {
    "utf-8".into()
}
fn default_write_mode() -> String {
    "w".into()
}
fn default_dot() -> String {
    ".".into()
}

#[derive(Deserialize)]
pub(crate) struct CreateFileRequest {
    path: String,
    #[serde(default)]
    content: String,
    #[serde(default = "default_mode")]
    mode: u32,
}

pub(crate) async fn create_file(State(st): State<AppState>, ApiJson(req): ApiJson<CreateFileRequest>) -> Result<Json<Value>, AppError> {
    let (ws, quota) = (st.ws.clone(), st.quota.clone());
    blocking(move || {
        if req.mode > 0o7777 {
            return Err(AppError::unprocessable(format!("Invalid file mode: {}", req.mode)));
        }
        let exists = || AppError::bad_request(format!("File already exists: {}", req.path));
        if ws.resolve_write(&req.path)?.lstat().map_err(|e| io_err("Failed to create file", e))?.is_some() {
            return Err(exists());
        }
        let new = req.content.len() as u64;
        quota.admit(new, 0)?;
        let created = ws
            .open_write(&req.path, OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL, req.mode)
            .map_err(|e| match errno_of(&e) {
                Some(libc::EEXIST) => exists(),
                _ => io_err("Failed to create file", e),
            })
            .and_then(|(mut f, rel)| {
                f.write_all(req.content.as_bytes()).map_err(|e| io_err("Failed to create file", e.into()))?;
                // The umask narrowed the mode at open; apply it exactly (as
                // chmod does), on the descriptor.
                f.set_permissions(std::fs::Permissions::from_mode(req.mode)).map_err(|e| io_err("Failed to create file", e.into()))?;
                Ok(rel)
            });
        let rel = created.inspect_err(|_| quota.refund(new, 0))?;
        Ok(Json(json!({
            "success": true,
            "message": format!("File created: {}", req.path),
            "path": path_string(&ws.display(&rel)),
        })))
    })
    .await
}

#[derive(Deserialize)]
pub(crate) struct ReadFileRequest {
    path: String,
    #[serde(default = "default_encoding")]
    encoding: String,
    #[serde(default)]
    offset: Option<i64>,
    #[serde(default)]
    limit: Option<i64>,
}

pub(crate) async fn read_file(State(st): State<AppState>, ApiJson(req): ApiJson<ReadFileRequest>) -> Result<Json<Value>, AppError> {
    let ws = st.ws.clone();
    blocking(move || {
        let enc = encoding(&req.encoding)?;
        let (text, size, path) = read_text(&ws, &req.path, &enc)?;
        let content = slice_lines(&text, req.offset, req.limit);
        Ok(Json(json!({
            "content": content,
            "path": path_string(&path),
            "size": size,
        })))
    })
    .await
}

#[derive(Deserialize)]
pub(crate) struct WriteFileRequest {
    path: String,
    content: String,
    #[serde(default = "default_write_mode")]
    mode: String,
    #[serde(default = "default_encoding")]
    encoding: String,
}

pub(crate) async fn write_file(State(st): State<AppState>, ApiJson(req): ApiJson<WriteFileRequest>) -> Result<Json<Value>, AppError> {
    let (ws, quota) = (st.ws.clone(), st.quota.clone());
    blocking(move || {
        let enc = encoding(&req.encoding)?;
        let bytes = encode(&req.content, &enc)?;
        // Shipyard: anything but "w" appends.
        let append = req.mode != "w";
        let (path, size) = write_bytes(&ws, &quota, &req.path, &bytes, append)?;
        Ok(Json(json!({
            "success": true,
            "message": format!("File written: {}", req.path),
            "path": path_string(&path),
            "size": size,
        })))
    })
    .await
}

#[derive(Deserialize)]
pub(crate) struct EditFileRequest {
    path: String,
    old_string: String,
    new_string: String,
    #[serde(default)]
    replace_all: bool,
    #[serde(default = "default_encoding")]
    encoding: String,
}

pub(crate) async fn edit_file(State(st): State<AppState>, ApiJson(req): ApiJson<EditFileRequest>) -> Result<Json<Value>, AppError> {
    let (ws, quota) = (st.ws.clone(), st.quota.clone());
    blocking(move || {
        let enc = encoding(&req.encoding)?;
        // One descriptor for reading and rewriting: the file edited is the
        // file read.
        let (fd, rel) = match ws.open_existing(&req.path, OFlags::RDWR | OFlags::NONBLOCK) {
            Ok(v) => v,
            Err(e) if is_not_found(&e) => {
                return Err(AppError::not_found(format!("File not found: {}", req.path)));
            }
            Err(e) if errno_of(&e) == Some(libc::EISDIR) => {
                return Err(AppError::bad_request(format!("Path is not a file: {}", req.path)));
            }
            Err(e) => return Err(io_err("Failed to edit file", e)),
        };
        let st_before = rustix::fs::fstat(&fd).map_err(|e| io_err("Failed to edit file", e.into()))?;
        let old_len = check_text_file(&st_before, &req.path)?;
        let mut f = File::from(fd);
        let text = normalize_newlines(&decode(&read_capped(&mut f)?, &enc));
        if req.old_string == req.new_string {
            return Err(AppError::bad_request("'old_string' and 'new_string' must differ"));
        }
        if req.old_string.is_empty() {
            return Err(AppError::bad_request("'old_string' must not be empty"));
        }
        let count = text.matches(req.old_string.as_str()).count();
        if count == 0 {
            return Err(AppError::bad_request("'old_string' not found in file"));
        }
        if count > 1 && !req.replace_all {
            return Err(AppError::bad_request(format!(
                "'old_string' appears {count} times in file; set replace_all=true to replace all occurrences"
            )));
        }
        let (updated, replacements) = if req.replace_all {
            (text.replace(&req.old_string, &req.new_string), count)
        } else {
            (text.replacen(&req.old_string, &req.new_string, 1), 1)
        };
        let bytes = encode(&updated, &enc)?;
        let new = bytes.len() as u64;
        quota.admit(new, old_len)?;
        let rewrite = (|| -> std::io::Result<u64> {
            f.set_len(0)?;
            f.rewind()?;
            f.write_all(&bytes)?;
            Ok(f.metadata()?.len())
        })();
        let size = rewrite.inspect_err(|_| quota.refund(new, old_len)).map_err(|e| io_err("Failed to edit file", e.into()))?;
        Ok(Json(json!({
            "success": true,
            "message": format!("File edited: {}", req.path),
            "path": path_string(&ws.display(&rel)),
            "replacements": replacements,
            "size": size,
        })))
    })
    .await
}

#[derive(Deserialize)]
pub(crate) struct DeleteFileRequest {
    path: String,
}

pub(crate) async fn delete_file(State(st): State<AppState>, ApiJson(req): ApiJson<DeleteFileRequest>) -> Result<Json<Value>, AppError> {
    let ws = st.ws.clone();
    blocking(move || {
        // A symlink is removed itself, never its target.
        if ws.resolve(&req.path, Last::NoFollow)?.is_root() {
            return Err(AppError::bad_request("Refusing to delete the workspace root"));
        }
        match ws.remove(&req.path) {
            Ok(true) => Ok(Json(json!({"success": true, "message": format!("Directory deleted: {}", req.path)}))),
            Ok(false) => Ok(Json(json!({"success": true, "message": format!("File deleted: {}", req.path)}))),
            Err(e) if is_not_found(&e) => Err(AppError::not_found(format!("Path not found: {}", req.path))),
            Err(e) => Err(io_err("Failed to delete", e)),
        }
    })
    .await
}

#[derive(Deserialize)]
pub(crate) struct ListDirRequest {
    #[serde(default = "default_dot")]
    path: String,
    #[serde(default)]
    show_hidden: bool,
}

/// One entry of a listing: its resolved (canonical) path and `stat`.
/// Entries that resolve outside the workspace or cannot be stat'ed
/// (dangling links) are `None`, as in Shipyard.
fn list_entry(ws: &Workspace, dir: &OwnedFd, dir_rel: &Path, name: &OsStr) -> Option<(PathBuf, Stat)> {
    let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).ok()?;
    if file_type(&st) != FileType::Symlink {
        return Some((ws.display(&dir_rel.join(name)), st));
    }
    let through = dir_rel.join(name);
    let (fd, rel) = ws.open_existing(through.to_str()?, OFlags::PATH).ok()?;
    let st = rustix::fs::fstat(&fd).ok()?;
    Some((ws.display(&rel), st))
}

pub(crate) async fn list_dir(State(st): State<AppState>, ApiJson(req): ApiJson<ListDirRequest>) -> Result<Json<Value>, AppError> {
    let ws = st.ws.clone();
    blocking(move || {
        let (dir, rel) = match ws.open_dir(&req.path) {
            Ok(v) => v,
            Err(e) if is_not_found(&e) => {
                return Err(AppError::not_found(format!("Directory not found: {}", req.path)));
            }
            Err(e) if errno_of(&e) == Some(libc::ENOTDIR) => {
                return Err(AppError::bad_request(format!("Path is not a directory: {}", req.path)));
            }
            Err(e) => return Err(io_err("Failed to list directory", e)),
        };
        let reader = rustix::fs::Dir::read_from(&dir).map_err(|e| io_err("Failed to list directory", e.into()))?;
        let mut files: Vec<(bool, String, Value)> = Vec::new();
        for entry in reader.flatten() {
            let raw = entry.file_name().to_bytes();
            if raw == b"." || raw == b".." {
                continue;
            }
            let Ok(name) = std::str::from_utf8(raw) else {
                continue;
            };
            if !req.show_hidden && name.starts_with('.') {
                continue;
            }
            let Some((path, meta)) = list_entry(&ws, &dir, &rel, OsStr::from_bytes(raw)) else {
                continue;
            };
            let ty = file_type(&meta);
            let modified = meta.st_mtime as f64 + meta.st_mtime_nsec as f64 / 1e9;
            let (is_dir, is_file) = (ty == FileType::Directory, ty == FileType::RegularFile);
            files.push((
                is_dir,
                name.to_lowercase(),
                json!({
                    "name": name,
                    "path": path_string(&path),
                    "is_file": is_file,
                    "is_dir": is_dir,
                    "size": if is_file { Some(meta.st_size.max(0) as u64) } else { None },
                    "modified_time": modified,
                }),
            ));
        }
        files.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        Ok(Json(json!({
            "files": files.into_iter().map(|f| f.2).collect::<Vec<_>>(),
            "current_path": path_string(&ws.display(&rel)),
        })))
    })
    .await
}

// --- upload / download ------------------------------------------------------

/// A partially written upload in directory `dir`, removed (by descriptor)
/// unless it was moved into place.
struct TempAt {
    dir: Arc<OwnedFd>,
    name: Option<String>,
}

impl TempAt {
    fn keep(&mut self) {
        self.name = None;
    }
}

impl Drop for TempAt {
    fn drop(&mut self) {
        if let Some(n) = &self.name {
            let _ = rustix::fs::unlinkat(self.dir.as_fd(), n.as_str(), AtFlags::empty());
        }
    }
}

/// Streams one multipart field into a new temp file in `dir`, counting the
/// bytes against the cargo limit as they arrive.
async fn stream_to_temp(field: &mut axum::extract::multipart::Field<'_>, dir: Arc<OwnedFd>, charge: &mut StreamCharge) -> Result<TempAt, AppError> {
    let name = format!(".ship-upload-{}.part", Uuid::new_v4().simple());
    let fd = rustix::fs::openat(
        dir.as_fd(),
        name.as_str(),
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_bits_truncate(0o666),
    )
    .map_err(|e| io_err("Failed to store upload", e.into()))?;
    let guard = TempAt { dir, name: Some(name) };
    let file = tokio::fs::File::from_std(File::from(fd));
    let mut w = tokio::io::BufWriter::with_capacity(256 * 1024, file);
    while let Some(chunk) = field.chunk().await? {
        // Over the limit: stop here; the guard removes the partial file.
        charge.add(chunk.len() as u64)?;
        w.write_all(&chunk).await.map_err(|e| io_err("Failed to store upload", e.into()))?;
    }
    w.flush().await.map_err(|e| io_err("Failed to store upload", e.into()))?;
    Ok(guard)
}

/// Reads a short text field; the body limit is off for uploads, so the size
/// is bounded here instead.
async fn small_text(field: &mut axum::extract::multipart::Field<'_>) -> Result<String, AppError> {
    const MAX: usize = 64 * 1024;
    let mut buf = Vec::new();
    while let Some(chunk) = field.chunk().await? {
        if buf.len() + chunk.len() > MAX {
            return Err(AppError::unprocessable("file_path is too long"));
        }
        buf.extend_from_slice(&chunk);
    }
    String::from_utf8(buf).map_err(|_| AppError::unprocessable("file_path is not valid UTF-8"))
}

/// Where an upload goes: the target's directory (created when missing), its
/// name and path, and the size of the file it replaces.
struct Target {
    dir: Arc<OwnedFd>,
    name: std::ffi::OsString,
    rel: PathBuf,
    replaced: u64,
}

fn prepare_target(ws: &Workspace, file_path: &str) -> Result<Target, AppError> {
    let old = ws.resolve_write(file_path)?.lstat().map_err(|e| io_err("Failed to store upload", e))?;
    let replaced = match &old {
        Some(st) if file_type(st) == FileType::Directory => {
            return Err(AppError::bad_request(format!("Path is a directory: {file_path}")));
        }
        Some(st) if file_type(st) == FileType::RegularFile => st.st_size.max(0) as u64,
        _ => 0,
    };
    let (dir, name, rel) = ws.create_parents(file_path).map_err(|e| io_err("Failed to create directories", e))?;
    Ok(Target { dir: Arc::new(dir), name, rel, replaced })
}

/// Moves the temp file to the target (both by descriptor); copies when they
/// are on different filesystems (a mount inside the workspace).
fn move_into_place(mut tmp: TempAt, target: &Target) -> Result<(), AppError> {
    let Some(src) = tmp.name.clone() else {
        return Err(AppError::internal("upload temp file missing"));
    };
    match rustix::fs::renameat(tmp.dir.as_fd(), src.as_str(), target.dir.as_fd(), &target.name) {
        Ok(()) => {
            tmp.keep();
            Ok(())
        }
        Err(rustix::io::Errno::XDEV) => {
            let copy = || -> Result<(), PathError> {
                let from = rustix::fs::openat(tmp.dir.as_fd(), src.as_str(), OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())?;
                let to = rustix::fs::openat(
                    target.dir.as_fd(),
                    &target.name,
                    OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::from_bits_truncate(0o666),
                )?;
                std::io::copy(&mut File::from(from), &mut File::from(to))?;
                Ok(())
            };
            copy().map_err(|e| io_err("Failed to store upload", e))
            // The guard removes the source.
        }
        Err(e) => Err(io_err("Failed to store upload", e.into())),
    }
}

/// `POST /fs/upload` (multipart: `file` + `file_path`). The file part is
/// streamed to disk so uploads of any size run in constant memory.
pub(crate) async fn upload(State(st): State<AppState>, multipart: Result<Multipart, MultipartRejection>) -> Result<Json<Value>, AppError> {
    let mut multipart = multipart?;
    let ws = st.ws.clone();
    let mut file_path: Option<String> = None;
    // (temp file, charge, target if known when streamed)
    let mut stored: Option<(TempAt, StreamCharge, Option<Target>)> = None;
    while let Some(mut field) = multipart.next_field().await? {
        match field.name() {
            Some("file_path") if file_path.is_none() => {
                file_path = Some(small_text(&mut field).await?);
            }
            Some("file") if stored.is_none() => {
                if let Some(fp) = &file_path {
                    let (ws2, fp2) = (ws.clone(), fp.clone());
                    let quota = st.quota.clone();
                    let (target, mut charge) = blocking(move || {
                        let target = prepare_target(&ws2, &fp2)?;
                        let charge = quota.stream(target.replaced);
                        Ok((target, charge))
                    })
                    .await?;
                    let tmp = stream_to_temp(&mut field, target.dir.clone(), &mut charge).await?;
                    stored = Some((tmp, charge, Some(target)));
                } else {
                    // Path not known yet: park the bytes in the workspace root.
                    let root = Arc::new(ws.root_fd().try_clone_to_owned().map_err(|e| io_err("Failed to store upload", e.into()))?);
                    let quota = st.quota.clone();
                    let mut charge = blocking(move || Ok(quota.stream(0))).await?;
                    let tmp = stream_to_temp(&mut field, root, &mut charge).await?;
                    stored = Some((tmp, charge, None));
                }
            }
            _ => while field.chunk().await?.is_some() {},
        }
    }
    let Some(file_path) = file_path else {
        return Err(AppError::unprocessable("Field required: file_path"));
    };
    let Some((tmp, charge, target)) = stored else {
        return Err(AppError::unprocessable("Field required: file"));
    };
    let size = charge.streamed();
    let ws2 = ws.clone();
    let rel = blocking(move || {
        let target = match target {
            Some(t) => t,
            None => prepare_target(&ws2, &file_path)?,
        };
        move_into_place(tmp, &target)?;
        Ok(target.rel)
    })
    .await?;
    charge.commit();
    let path = ws.display(&rel);
    info!(path = %path.display(), size, "upload stored");
    Ok(Json(json!({
        "success": true,
        "message": "File uploaded successfully",
        "file_path": path_string(&path),
        "size": size,
        "error": null,
    })))
}

#[derive(Deserialize)]
pub(crate) struct DownloadQuery {
    file_path: String,
}

/// `Content-Disposition` like Shipyard's: ASCII fallback plus RFC 5987.
pub(crate) fn content_disposition(filename: &str) -> String {
    let fallback: String = filename.chars().map(|c| if (' '..='~').contains(&c) && !matches!(c, '"' | '\\' | ';') { c } else { '_' }).collect();
    let fallback = fallback.trim();
    let fallback = if fallback.is_empty() { "download" } else { fallback };
    let mut encoded = String::new();
    for b in filename.bytes() {
        if b.is_ascii_alphanumeric() || b"_.-~!#$&+^`|".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

/// `GET /fs/download?file_path=…`: streamed, never loaded into memory.
pub(crate) async fn download(State(st): State<AppState>, ApiQuery(q): ApiQuery<DownloadQuery>) -> Result<Response, AppError> {
    let ws = st.ws.clone();
    let (file, st, rel) = blocking(move || match ws.open_read(&q.file_path) {
        Ok(v) => Ok(v),
        Err(e) if is_not_found(&e) => Err(AppError::not_found("File not found")),
        Err(e) => Err(io_err("File download failed", e)),
    })
    .await?;
    if file_type(&st) != FileType::RegularFile {
        return Err(AppError::bad_request("Path is not a file"));
    }
    let name = rel.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "download".into());
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(st.st_size.max(0) as u64));
    match HeaderValue::from_str(&content_disposition(&name)) {
        Ok(v) => {
            headers.insert(header::CONTENT_DISPOSITION, v);
        }
        Err(e) => warn!(error = %e, "content-disposition not representable"),
    }
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(tokio::fs::File::from_std(file), 256 * 1024));
    Ok((StatusCode::OK, headers, body).into_response())
}

fn path_string(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_slicing_matches_python() {
        let t = "a\nb\nc\n";
        assert_eq!(slice_lines(t, None, None), t);
        assert_eq!(slice_lines(t, Some(2), None), "b\nc\n");
        assert_eq!(slice_lines(t, Some(2), Some(1)), "b\n");
        assert_eq!(slice_lines(t, Some(0), Some(2)), "a\nb\n");
        assert_eq!(slice_lines(t, Some(9), Some(2)), "");
        assert_eq!(slice_lines(t, None, Some(-1)), "a\nb\n");
        assert_eq!(slice_lines("x\ny", Some(2), None), "y");
    }

    #[test]
    fn newline_and_encoding_handling() {
        assert_eq!(normalize_newlines("a\r\nb\rc\n"), "a\nb\nc\n");
        assert_eq!(decode(b"ok \xff", &Enc::Utf8), "ok \u{FFFD}");
        assert_eq!(decode(b"\xe9", &Enc::Latin1), "é");
        assert_eq!(encode("é", &Enc::Latin1).unwrap(), vec![0xe9]);
        assert!(encode("é", &Enc::Ascii).is_err());
        assert!(encoding("UTF_8").is_ok());
        assert!(encoding("klingon").is_err());
    }

    #[test]
    fn disposition() {
        assert_eq!(content_disposition("a b.txt"), "attachment; filename=\"a b.txt\"; filename*=UTF-8''a%20b.txt");
        assert_eq!(content_disposition("报告.pdf"), "attachment; filename=\"__.pdf\"; filename*=UTF-8''%E6%8A%A5%E5%91%8A.pdf");
    }

    /// The attack this module is built against: one thread swaps a
    /// directory of the workspace with a symlink to a directory outside (a
    /// stand-in for `/etc` holding a secret) as fast as it can, while this
    /// thread reads and writes through that path 100 000 times. Not one read
    /// may return the outside content, not one write may land outside.
    #[test]
    fn swapping_a_directory_for_a_symlink_never_escapes() {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        const ITERATIONS: usize = 100_000;
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("etc");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("passwd"), "SECRET").unwrap();
        let wsdir = tmp.path().join("workspace");
        std::fs::create_dir_all(wsdir.join("d")).unwrap();
        std::fs::write(wsdir.join("d/passwd"), "inside").unwrap();
        std::os::unix::fs::symlink(&outside, wsdir.join("alt")).unwrap();
        let ws = Workspace::open(&wsdir).unwrap();
        let quota = Quota::new(Arc::new(Workspace::open(&wsdir).unwrap()), None);

        let stop = Arc::new(AtomicBool::new(false));
        let swaps = Arc::new(AtomicU64::new(0));
        let swapper = {
            let (stop, swaps, dir) = (stop.clone(), swaps.clone(), wsdir.clone());
            std::thread::spawn(move || {
                let root = File::open(&dir).unwrap();
                while !stop.load(Ordering::Relaxed) {
                    // `d` and `alt` trade places atomically: `d` is the real
                    // directory one moment and the link to `etc` the next.
                    rustix::fs::renameat_with(&root, "d", &root, "alt", rustix::fs::RenameFlags::EXCHANGE).unwrap();
                    swaps.fetch_add(1, Ordering::Relaxed);
                }
            })
        };

        let (mut read_ok, mut refused) = (0u64, 0u64);
        for i in 0..ITERATIONS {
            match i % 4 {
                0 | 1 => match read_text(&ws, "d/passwd", &Enc::Utf8) {
                    Ok((text, _, path)) => {
                        assert_ne!(text, "SECRET", "read escaped the workspace at {i}");
                        assert!(path.starts_with(ws.canon()));
                        read_ok += 1;
                    }
                    Err(_) => refused += 1,
                },
                2 => match write_bytes(&ws, &quota, "d/written.txt", b"w", false) {
                    Ok((path, _)) => assert!(path.starts_with(ws.canon())),
                    Err(_) => refused += 1,
                },
                _ => {
                    let p = format!("d/sub{}/new.txt", i % 7);
                    if write_bytes(&ws, &quota, &p, b"n", true).is_err() {
                        refused += 1;
                    }
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        swapper.join().unwrap();

        let mut names: Vec<_> = std::fs::read_dir(&outside).unwrap().map(|e| e.unwrap().file_name()).collect();
        names.sort();
        assert_eq!(names, ["passwd"], "a write landed outside the workspace");
        assert_eq!(std::fs::read_to_string(outside.join("passwd")).unwrap(), "SECRET");
        // The race really ran (both outcomes seen, thousands of swaps).
        eprintln!("{} swaps, {read_ok} inside reads, {refused} refused operations", swaps.load(Ordering::Relaxed));
        assert!(swaps.load(Ordering::Relaxed) > 1000);
        assert!(read_ok > 0);
    }
}
