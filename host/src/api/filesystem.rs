//! Filesystem endpoints (Shipyard Neo's contract, docs/compatibility.md: "Filesystem").
//!
//! Uploads and downloads stream: the agent's multipart file part flows through
//! a bounded channel into the adapter's request to the runtime, and the
//! runtime's download body flows straight back to the agent. Neither is ever
//! held whole in memory, nor copied into plugin memory.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio_util::io::ReaderStream;

use super::AppState;
use super::extract::{Owner, parse_query, require};
use super::file_text;
use super::multipart::{BoundedMultipart, multipart_error, read_text};
use crate::adapter::{CapabilityCall, CapabilityOutcome, FileEntry};
use crate::config::ProfileConfig;
use crate::db::sandboxes::Sandbox;
use crate::error::{BayError, BayResult};
use crate::paths::validate_relative_path;
use crate::plugins::body::HostBody;

#[derive(Deserialize)]
struct PathQuery {
    #[serde(default)]
    path: Option<String>,
}

async fn target(state: &AppState, owner: &str, id: &str) -> BayResult<(Sandbox, ProfileConfig)> {
    super::sandbox_for(state, owner, id, "filesystem").await
}

async fn run(state: &AppState, sandbox: &Sandbox, profile: &ProfileConfig, call: CapabilityCall) -> BayResult<CapabilityOutcome> {
    Ok(state.sandboxes.call(sandbox, profile, call).await?.0)
}

fn unexpected(outcome: CapabilityOutcome) -> BayError {
    BayError::ship(format!("runtime adapter answered a filesystem call with {outcome:?}"))
}

fn query_path(q: Option<&str>, default: Option<&str>) -> BayResult<String> {
    let query: PathQuery = parse_query(q)?;
    let path = match (&query.path, default) {
        (None, Some(d)) => d.to_owned(),
        _ => require(&query.path, "path")?.to_owned(),
    };
    validate_relative_path(&path, "path")
}

pub async fn read(State(state): State<AppState>, Owner(owner): Owner, Path(id): Path<String>, RawQuery(q): RawQuery) -> BayResult<Response> {
    let (sandbox, profile) = target(&state, &owner, &id).await?;
    let path = query_path(q.as_deref(), None)?;
    match run(&state, &sandbox, &profile, CapabilityCall::FileRead { path }).await? {
        CapabilityOutcome::FileContent { content, size } => file_text::content_response(content, size, file_text::READ_LIMIT).await,
        other => Err(unexpected(other)),
    }
}

pub async fn write(State(state): State<AppState>, Owner(owner): Owner, Path(id): Path<String>, body: Body) -> BayResult<Json<Value>> {
    let (sandbox, profile) = target(&state, &owner, &id).await?;
    let request = file_text::read_write_request(body, file_text::WRITE_LIMIT).await?;
    let path = validate_relative_path(&request.path, "path")?;
    match run(&state, &sandbox, &profile, CapabilityCall::FileWrite { path, content: request.content }).await? {
        CapabilityOutcome::Done => Ok(Json(json!({ "status": "ok" }))),
        other => Err(unexpected(other)),
    }
}

pub async fn delete(State(state): State<AppState>, Owner(owner): Owner, Path(id): Path<String>, RawQuery(q): RawQuery) -> BayResult<Json<Value>> {
    let (sandbox, profile) = target(&state, &owner, &id).await?;
    let path = query_path(q.as_deref(), None)?;
    match run(&state, &sandbox, &profile, CapabilityCall::FileDelete { path }).await? {
        CapabilityOutcome::Done => Ok(Json(json!({ "status": "ok" }))),
        other => Err(unexpected(other)),
    }
}

pub async fn list(State(state): State<AppState>, Owner(owner): Owner, Path(id): Path<String>, RawQuery(q): RawQuery) -> BayResult<Json<Value>> {
    let (sandbox, profile) = target(&state, &owner, &id).await?;
    let path = query_path(q.as_deref(), Some("."))?;
    match run(&state, &sandbox, &profile, CapabilityCall::FileList { path }).await? {
        CapabilityOutcome::FileList(entries) => Ok(Json(json!({ "entries": entries_json(entries) }))),
        other => Err(unexpected(other)),
    }
}

fn entries_json(entries: Vec<FileEntry>) -> Vec<Value> {
    entries
        .into_iter()
        .map(|e| {
            json!({
                "name": e.name,
                "path": e.path,
                "is_file": e.is_file,
                "is_dir": e.is_dir,
                "size": e.size,
                "modified_time": e.modified_time,
            })
        })
        .collect()
}

/// `POST …/filesystem/upload`: the multipart body is read after the sandbox
/// and capability checks (an early error leaves it to the drain layer,
/// `api::limits`), with bounded text fields (`api::multipart`).
pub async fn upload(State(state): State<AppState>, Owner(owner): Owner, Path(id): Path<String>, request: Request) -> BayResult<Json<Value>> {
    let (sandbox, profile) = target(&state, &owner, &id).await?;
    let (parts, body) = request.into_parts();
    let mut multipart = BoundedMultipart::new(&parts.headers, body, &state.limits)?;
    let mut path: Option<String> = None;
    // A file part that arrives before the `path` field is spooled to a
    // temporary file (bounded memory), then streamed once the path is known.
    let mut spooled: Option<(tempfile::NamedTempFile, u64)> = None;
    let mut result: Option<(String, u64)> = None;
    while let Some(mut field) = multipart.next_field().await? {
        match field.name() {
            Some("path") => {
                let text = read_text(&mut field, "path", "multipart_field_bytes", state.limits.multipart_field_bytes).await?;
                path = Some(validate_relative_path(&text, "path")?);
            }
            Some("file") if result.is_none() && spooled.is_none() => match &path {
                Some(p) => {
                    // Stream the part to the runtime while reading it.
                    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
                    let body = HostBody::new(tokio_stream_from(rx), None);
                    let call = CapabilityCall::FileUpload { path: p.clone(), content: body };
                    let pump = async move {
                        loop {
                            match field.chunk().await {
                                Ok(Some(chunk)) => {
                                    if tx.send(Ok(chunk)).await.is_err() {
                                        return Ok(());
                                    }
                                }
                                Ok(None) => return Ok(()),
                                Err(e) => {
                                    let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                                    return Err(multipart_error(e));
                                }
                            }
                        }
                    };
                    let (pumped, outcome) = tokio::join!(pump, run(&state, &sandbox, &profile, call));
                    pumped?;
                    result = Some(uploaded(outcome?, p)?);
                }
                None => {
                    let file = tempfile::NamedTempFile::new().map_err(|e| BayError::internal(format!("cannot spool upload: {e}")))?;
                    let mut out = tokio::fs::File::from_std(file.reopen().map_err(|e| BayError::internal(e.to_string()))?);
                    let mut size = 0u64;
                    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                        size += chunk.len() as u64;
                        out.write_all(&chunk).await.map_err(|e| BayError::internal(format!("cannot spool upload: {e}")))?;
                    }
                    out.flush().await.map_err(|e| BayError::internal(e.to_string()))?;
                    spooled = Some((file, size));
                }
            },
            _ => {
                // Unknown fields are drained and ignored.
                while field.chunk().await.map_err(multipart_error)?.is_some() {}
            }
        }
    }
    if result.is_none()
        && let Some((file, size)) = spooled
    {
        let p = path.clone().ok_or_else(|| BayError::request_validation(&["body", "path"], "Field required", "missing"))?;
        let reader = tokio::fs::File::open(file.path()).await.map_err(|e| BayError::internal(e.to_string()))?;
        let stream = ReaderStream::new(reader).boxed();
        let call = CapabilityCall::FileUpload { path: p.clone(), content: HostBody::new(stream, Some(size)) };
        result = Some(uploaded(run(&state, &sandbox, &profile, call).await?, &p)?);
    }
    let Some((path, size)) = result else {
        let missing = if path.is_none() { "path" } else { "file" };
        return Err(BayError::request_validation(&["body", missing], "Field required", "missing"));
    };
    Ok(Json(json!({ "status": "ok", "path": path, "size": size })))
}

fn tokio_stream_from(mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>) -> crate::plugins::body::ByteStream {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}

fn uploaded(outcome: CapabilityOutcome, path: &str) -> BayResult<(String, u64)> {
    match outcome {
        CapabilityOutcome::Uploaded { size, .. } => Ok((path.to_owned(), size)),
        other => Err(unexpected(other)),
    }
}

pub async fn download(State(state): State<AppState>, Owner(owner): Owner, Path(id): Path<String>, RawQuery(q): RawQuery) -> BayResult<Response> {
    let (sandbox, profile) = target(&state, &owner, &id).await?;
    let path = query_path(q.as_deref(), None)?;
    let filename = path.rsplit('/').next().unwrap_or(&path).replace('"', "");
    match run(&state, &sandbox, &profile, CapabilityCall::FileDownload { path: path.clone() }).await? {
        CapabilityOutcome::Downloaded { content, size } => {
            let mut response = Body::from_stream(content.into_stream()).into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
            if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
                headers.insert(header::CONTENT_DISPOSITION, v);
            }
            if let Some(size) = size {
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
            }
            Ok(response)
        }
        other => Err(unexpected(other)),
    }
}
