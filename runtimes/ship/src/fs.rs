//! Filesystem endpoints (`/fs/*`), wire-compatible with Shipyard's Ship.
//!
//! Text semantics follow Python's text mode, which Shipyard uses: reading
//! translates `\r\n` and lone `\r` to `\n` (so the `old_string` an agent
//! copies out of `read_file` also matches in `edit_file`).

use std::{
    fs::OpenOptions,
    io::Write,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
    time::UNIX_EPOCH,
};

use axum::{
    Json,
    body::Body,
    extract::{Multipart, State, multipart::MultipartRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tracing::{info, warn};
use uuid::Uuid;

use crate::{
    AppState,
    config::Config,
    error::{ApiJson, ApiQuery, AppError, blocking},
    paths::{resolve_path, resolve_path_nofollow},
};

/// Largest file `read_file`/`edit_file` load as text; bigger files are for
/// `/fs/download` (a JSON string of that size helps no agent).
const MAX_TEXT_FILE: u64 = 64 * 1024 * 1024;

fn resolve(cfg: &Config, p: &str) -> Result<PathBuf, AppError> {
    Ok(resolve_path(&cfg.workspace, &cfg.workspace_canon, p)?)
}

fn io_err(what: &str, e: std::io::Error) -> AppError {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => AppError::new(StatusCode::FORBIDDEN, format!("{what}: permission denied")),
        _ => AppError::internal(format!("{what}: {e}")),
    }
}

// --- encodings -------------------------------------------------------------

enum Enc {
    Utf8,
    Utf8Sig,
    Latin1,
    Ascii,
}

fn encoding(name: &str) -> Result<Enc, AppError> {
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
pub fn normalize_newlines(s: &str) -> String {
    if !s.contains('\r') {
        return s.to_string();
    }
    s.replace("\r\n", "\n").replace('\r', "\n")
}

/// Python `lines[offset-1 : offset-1+limit]` over `readlines()`.
pub fn slice_lines(text: &str, offset: Option<i64>, limit: Option<i64>) -> String {
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

fn read_text(path: &Path, display: &str, enc: &Enc) -> Result<String, AppError> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(AppError::not_found(format!("File not found: {display}")));
        }
        Err(e) => return Err(io_err("Failed to read file", e)),
    };
    if !meta.is_file() {
        return Err(AppError::bad_request(format!("Path is not a file: {display}")));
    }
    if meta.len() > MAX_TEXT_FILE {
        return Err(AppError::bad_request(format!("File is too large to read as text ({} bytes); use /fs/download", meta.len())));
    }
    let bytes = std::fs::read(path).map_err(|e| io_err("Failed to read file", e))?;
    Ok(normalize_newlines(&decode(&bytes, enc)))
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn path_string(p: &Path) -> String {
    p.to_string_lossy().into_owned()
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
pub struct CreateFileRequest {
    path: String,
    #[serde(default)]
    content: String,
    #[serde(default = "default_mode")]
    mode: u32,
}

pub async fn create_file(State(st): State<AppState>, ApiJson(req): ApiJson<CreateFileRequest>) -> Result<Json<Value>, AppError> {
    let cfg = st.cfg.clone();
    blocking(move || {
        if req.mode > 0o7777 {
            return Err(AppError::unprocessable(format!("Invalid file mode: {}", req.mode)));
        }
        let path = resolve(&cfg, &req.path)?;
        if std::fs::symlink_metadata(&path).is_ok() {
            return Err(AppError::bad_request(format!("File already exists: {}", req.path)));
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_err("Failed to create file", e))?;
        }
        let mut f = OpenOptions::new().write(true).create_new(true).mode(req.mode).open(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => AppError::bad_request(format!("File already exists: {}", req.path)),
            _ => io_err("Failed to create file", e),
        })?;
        f.write_all(req.content.as_bytes()).map_err(|e| io_err("Failed to create file", e))?;
        // The umask narrowed the mode at open; apply it exactly (as chmod does).
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(req.mode)).map_err(|e| io_err("Failed to create file", e))?;
        Ok(Json(json!({
            "success": true,
            "message": format!("File created: {}", req.path),
            "path": path_string(&path),
        })))
    })
    .await
}

#[derive(Deserialize)]
pub struct ReadFileRequest {
    path: String,
    #[serde(default = "default_encoding")]
    encoding: String,
    #[serde(default)]
    offset: Option<i64>,
    #[serde(default)]
    limit: Option<i64>,
}

pub async fn read_file(State(st): State<AppState>, ApiJson(req): ApiJson<ReadFileRequest>) -> Result<Json<Value>, AppError> {
    let cfg = st.cfg.clone();
    blocking(move || {
        let enc = encoding(&req.encoding)?;
        let path = resolve(&cfg, &req.path)?;
        let text = read_text(&path, &req.path, &enc)?;
        let content = slice_lines(&text, req.offset, req.limit);
        Ok(Json(json!({
            "content": content,
            "path": path_string(&path),
            "size": file_size(&path),
        })))
    })
    .await
}

#[derive(Deserialize)]
pub struct WriteFileRequest {
    path: String,
    content: String,
    #[serde(default = "default_write_mode")]
    mode: String,
    #[serde(default = "default_encoding")]
    encoding: String,
}

pub async fn write_file(State(st): State<AppState>, ApiJson(req): ApiJson<WriteFileRequest>) -> Result<Json<Value>, AppError> {
    let cfg = st.cfg.clone();
    blocking(move || {
        let enc = encoding(&req.encoding)?;
        let path = resolve(&cfg, &req.path)?;
        if path.is_dir() {
            return Err(AppError::bad_request(format!("Path is a directory: {}", req.path)));
        }
        let bytes = encode(&req.content, &enc)?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_err("Failed to write file", e))?;
        }
        // Shipyard: anything but "w" appends.
        let append = req.mode != "w";
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .append(append)
            .truncate(!append)
            .open(&path)
            .map_err(|e| io_err("Failed to write file", e))?;
        f.write_all(&bytes).map_err(|e| io_err("Failed to write file", e))?;
        drop(f);
        Ok(Json(json!({
            "success": true,
            "message": format!("File written: {}", req.path),
            "path": path_string(&path),
            "size": file_size(&path),
        })))
    })
    .await
}

#[derive(Deserialize)]
pub struct EditFileRequest {
    path: String,
    old_string: String,
    new_string: String,
    #[serde(default)]
    replace_all: bool,
    #[serde(default = "default_encoding")]
    encoding: String,
}

pub async fn edit_file(State(st): State<AppState>, ApiJson(req): ApiJson<EditFileRequest>) -> Result<Json<Value>, AppError> {
    let cfg = st.cfg.clone();
    blocking(move || {
        let enc = encoding(&req.encoding)?;
        let path = resolve(&cfg, &req.path)?;
        let text = read_text(&path, &req.path, &enc)?;
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
        std::fs::write(&path, bytes).map_err(|e| io_err("Failed to edit file", e))?;
        Ok(Json(json!({
            "success": true,
            "message": format!("File edited: {}", req.path),
            "path": path_string(&path),
            "replacements": replacements,
            "size": file_size(&path),
        })))
    })
    .await
}

#[derive(Deserialize)]
pub struct DeleteFileRequest {
    path: String,
}

pub async fn delete_file(State(st): State<AppState>, ApiJson(req): ApiJson<DeleteFileRequest>) -> Result<Json<Value>, AppError> {
    let cfg = st.cfg.clone();
    blocking(move || {
        // A symlink is removed itself, never its target.
        let path = resolve_path_nofollow(&cfg.workspace, &cfg.workspace_canon, &req.path)?;
        if path == cfg.workspace_canon {
            return Err(AppError::bad_request("Refusing to delete the workspace root"));
        }
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(AppError::not_found(format!("Path not found: {}", req.path)));
            }
            Err(e) => return Err(io_err("Failed to delete", e)),
        };
        if meta.is_dir() {
            std::fs::remove_dir_all(&path).map_err(|e| io_err("Failed to delete", e))?;
            Ok(Json(json!({"success": true, "message": format!("Directory deleted: {}", req.path)})))
        } else {
            std::fs::remove_file(&path).map_err(|e| io_err("Failed to delete", e))?;
            Ok(Json(json!({"success": true, "message": format!("File deleted: {}", req.path)})))
        }
    })
    .await
}

#[derive(Deserialize)]
pub struct ListDirRequest {
    #[serde(default = "default_dot")]
    path: String,
    #[serde(default)]
    show_hidden: bool,
}

pub async fn list_dir(State(st): State<AppState>, ApiJson(req): ApiJson<ListDirRequest>) -> Result<Json<Value>, AppError> {
    let cfg = st.cfg.clone();
    blocking(move || {
        let dir = resolve(&cfg, &req.path)?;
        match std::fs::metadata(&dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(AppError::not_found(format!("Directory not found: {}", req.path)));
            }
            Err(e) => return Err(io_err("Failed to list directory", e)),
            Ok(m) if !m.is_dir() => {
                return Err(AppError::bad_request(format!("Path is not a directory: {}", req.path)));
            }
            Ok(_) => {}
        }
        let rd = std::fs::read_dir(&dir).map_err(|e| io_err("Failed to list directory", e))?;
        let mut files: Vec<(bool, String, Value)> = Vec::new();
        for entry in rd.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !req.show_hidden && name.starts_with('.') {
                continue;
            }
            // As in Shipyard: entries are reported by their resolved path;
            // ones that resolve outside the workspace or cannot be stat'ed
            // (dangling links) are skipped.
            let Some(item) = entry.path().to_str().map(str::to_owned) else {
                continue;
            };
            let Ok(resolved) = resolve(&cfg, &item) else {
                continue;
            };
            let Ok(meta) = std::fs::metadata(&resolved) else {
                continue;
            };
            let modified = meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_secs_f64());
            let is_dir = meta.is_dir();
            let is_file = meta.is_file();
            files.push((
                is_dir,
                name.to_lowercase(),
                json!({
                    "name": name,
                    "path": path_string(&resolved),
                    "is_file": is_file,
                    "is_dir": is_dir,
                    "size": if is_file { Some(meta.len()) } else { None },
                    "modified_time": modified,
                }),
            ));
        }
        files.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        Ok(Json(json!({
            "files": files.into_iter().map(|f| f.2).collect::<Vec<_>>(),
            "current_path": path_string(&dir),
        })))
    })
    .await
}

// --- upload / download ------------------------------------------------------

/// Removes a partially written upload unless it was moved into place.
struct TempFile {
    path: Option<PathBuf>,
}

impl TempFile {
    fn keep(&mut self) {
        self.path = None;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = &self.path {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Streams one multipart field into a new temp file in `dir`.
async fn stream_to_temp(field: &mut axum::extract::multipart::Field<'_>, dir: &Path) -> Result<(TempFile, u64), AppError> {
    let tmp_path = dir.join(format!(".ship-upload-{}.part", Uuid::new_v4().simple()));
    let guard = TempFile { path: Some(tmp_path.clone()) };
    let file = tokio::fs::File::create(&tmp_path).await.map_err(|e| io_err("Failed to store upload", e))?;
    let mut w = tokio::io::BufWriter::with_capacity(256 * 1024, file);
    let mut size = 0u64;
    while let Some(chunk) = field.chunk().await? {
        size += chunk.len() as u64;
        w.write_all(&chunk).await.map_err(|e| io_err("Failed to store upload", e))?;
    }
    w.flush().await.map_err(|e| io_err("Failed to store upload", e))?;
    Ok((guard, size))
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

/// Resolves the upload target and makes sure it can be written.
fn prepare_target(cfg: &Config, file_path: &str) -> Result<PathBuf, AppError> {
    let target = resolve(cfg, file_path)?;
    if target.is_dir() {
        return Err(AppError::bad_request(format!("Path is a directory: {file_path}")));
    }
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io_err("Failed to create directories", e))?;
    }
    Ok(target)
}

/// Moves `tmp` to `target`; copies when they are on different filesystems.
async fn move_into_place(mut tmp: TempFile, target: &Path) -> Result<(), AppError> {
    let Some(src) = tmp.path.clone() else {
        return Err(AppError::internal("upload temp file missing"));
    };
    match tokio::fs::rename(&src, target).await {
        Ok(()) => {
            tmp.keep();
            Ok(())
        }
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            tokio::fs::copy(&src, target).await.map_err(|e| io_err("Failed to store upload", e))?;
            Ok(()) // the guard removes the source
        }
        Err(e) => Err(io_err("Failed to store upload", e)),
    }
}

/// `POST /fs/upload` (multipart: `file` + `file_path`). The file part is
/// streamed to disk so uploads of any size run in constant memory.
pub async fn upload(State(st): State<AppState>, multipart: Result<Multipart, MultipartRejection>) -> Result<Json<Value>, AppError> {
    let mut multipart = multipart?;
    let cfg = st.cfg.clone();
    let mut file_path: Option<String> = None;
    // (temp file, size, target if known when streamed)
    let mut stored: Option<(TempFile, u64, Option<PathBuf>)> = None;
    while let Some(mut field) = multipart.next_field().await? {
        match field.name() {
            Some("file_path") if file_path.is_none() => {
                file_path = Some(small_text(&mut field).await?);
            }
            Some("file") if stored.is_none() => {
                if let Some(fp) = &file_path {
                    let (cfg2, fp2) = (cfg.clone(), fp.clone());
                    let target = blocking(move || prepare_target(&cfg2, &fp2)).await?;
                    let dir = target.parent().map(Path::to_path_buf).unwrap_or(cfg.workspace_canon.clone());
                    let (tmp, size) = stream_to_temp(&mut field, &dir).await?;
                    stored = Some((tmp, size, Some(target)));
                } else {
                    // Path not known yet: park the bytes in the workspace.
                    let (tmp, size) = stream_to_temp(&mut field, &cfg.workspace_canon).await?;
                    stored = Some((tmp, size, None));
                }
            }
            _ => while field.chunk().await?.is_some() {},
        }
    }
    let Some(file_path) = file_path else {
        return Err(AppError::unprocessable("Field required: file_path"));
    };
    let Some((tmp, size, target)) = stored else {
        return Err(AppError::unprocessable("Field required: file"));
    };
    let target = match target {
        Some(t) => t,
        None => {
            let (cfg2, fp2) = (cfg.clone(), file_path.clone());
            blocking(move || prepare_target(&cfg2, &fp2)).await?
        }
    };
    move_into_place(tmp, &target).await?;
    info!(path = %target.display(), size, "upload stored");
    Ok(Json(json!({
        "success": true,
        "message": "File uploaded successfully",
        "file_path": path_string(&target),
        "size": size,
        "error": null,
    })))
}

#[derive(Deserialize)]
pub struct DownloadQuery {
    file_path: String,
}

/// `Content-Disposition` like Shipyard's: ASCII fallback plus RFC 5987.
pub fn content_disposition(filename: &str) -> String {
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
pub async fn download(State(st): State<AppState>, ApiQuery(q): ApiQuery<DownloadQuery>) -> Result<Response, AppError> {
    let target = resolve(&st.cfg, &q.file_path)?;
    let meta = match tokio::fs::metadata(&target).await {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(AppError::not_found("File not found"));
        }
        Err(e) => return Err(io_err("File download failed", e)),
    };
    if !meta.is_file() {
        return Err(AppError::bad_request("Path is not a file"));
    }
    let file = tokio::fs::File::open(&target).await.map_err(|e| io_err("File download failed", e))?;
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "download".into());
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(meta.len()));
    match HeaderValue::from_str(&content_disposition(&name)) {
        Ok(v) => {
            headers.insert(header::CONTENT_DISPOSITION, v);
        }
        Err(e) => warn!(error = %e, "content-disposition not representable"),
    }
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024));
    Ok((StatusCode::OK, headers, body).into_response())
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
}
