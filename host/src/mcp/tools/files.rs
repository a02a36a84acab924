//! Workspace files: read, write, list, delete (text), and upload / download
//! (binary, as base64 in the tool call: over HTTP the server cannot see the
//! client's disk, which Shipyard Neo's stdio server reads and writes).

use axum::http::Method;
use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Extensions};
use rmcp::{tool, tool_router};
use serde_json::{Value, json};

use super::sandbox_path;
use crate::mcp::args::{self, DownloadFile, FilePath, ListFiles, UploadFile, WriteFile};
use crate::mcp::rest::{CallError, CallResult, with_query};
use crate::mcp::server::BayMcp;
use crate::mcp::text::{clip, error_text, result, s};
use crate::mcp::{MAX_TRANSFER_FILE_BYTES, MAX_WRITE_FILE_BYTES};

/// Standard base64; padding optional, whitespace (line breaks) ignored.
const BASE64_LENIENT: GeneralPurpose =
    GeneralPurpose::new(&base64::alphabet::STANDARD, GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent));

pub(crate) fn decode_base64(text: &str) -> CallResult<Vec<u8>> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    BASE64_LENIENT.decode(compact.as_bytes()).map_err(|e| CallError::validation(format!("field 'content_base64' is not valid base64: {e}")))
}

fn listing(path: &str, entries: &[Value]) -> String {
    if entries.is_empty() {
        return format!("Directory `{path}` is empty.");
    }
    let mut lines = vec![format!("**Directory: {path}**\n")];
    for e in entries {
        if e.get("is_dir").and_then(Value::as_bool) == Some(true) {
            lines.push(format!("📁 {}/", s(e, "name")));
        } else {
            let size = e.get("size").and_then(Value::as_i64).map(|n| format!(" ({n} bytes)")).unwrap_or_default();
            lines.push(format!("📄 {}{size}", s(e, "name")));
        }
    }
    lines.join("\n")
}

#[tool_router(router = file_tools, vis = "pub(crate)")]
impl BayMcp {
    #[tool(description = "Read a text file (UTF-8) from the sandbox workspace. For binary files use download_file.")]
    async fn read_file(&self, Parameters(a): Parameters<FilePath>, ext: Extensions) -> CallToolResult {
        let rest = self.rest(&ext);
        result(
            async {
                let id = args::sandbox_id(&a.sandbox_id)?;
                let path = args::relative_path(args::required(&a.path, "path")?, "path")?;
                let r = rest.get(&with_query(&sandbox_path(id, "/filesystem/files"), &[("path", Some(path.to_owned()))])).await?;
                Ok(format!("**File: {path}**\n\n```\n{}\n```", clip(s(&r, "content"))))
            }
            .await,
        )
    }

    #[tool(description = "Write a text file in the sandbox workspace, replacing it if it exists; missing parent directories \
are created. For binary content use upload_file.")]
    async fn write_file(&self, Parameters(a): Parameters<WriteFile>, ext: Extensions) -> CallToolResult {
        let rest = self.rest(&ext);
        result(
            async {
                let id = args::sandbox_id(&a.sandbox_id)?;
                let path = args::relative_path(args::required(&a.path, "path")?, "path")?;
                let bytes = a.content.len();
                if bytes > MAX_WRITE_FILE_BYTES {
                    return Err(CallError::validation(format!(
                        "write_file content too large: {bytes} bytes exceeds limit of {MAX_WRITE_FILE_BYTES} bytes"
                    )));
                }
                rest.json(Method::PUT, &sandbox_path(id, "/filesystem/files"), Some(json!({"path": path, "content": a.content}))).await?;
                Ok(format!("File `{path}` written successfully ({bytes} bytes)."))
            }
            .await,
        )
    }

    #[tool(description = "List the files and directories in a sandbox workspace directory (hidden files are not shown).")]
    async fn list_files(&self, Parameters(a): Parameters<ListFiles>, ext: Extensions) -> CallToolResult {
        let rest = self.rest(&ext);
        result(
            async {
                let id = args::sandbox_id(&a.sandbox_id)?;
                let path = a.path.as_deref().unwrap_or(".");
                let path = args::relative_path(path, "path")?;
                let r = rest.get(&with_query(&sandbox_path(id, "/filesystem/directories"), &[("path", Some(path.to_owned()))])).await?;
                let entries = r.get("entries").and_then(Value::as_array).cloned().unwrap_or_default();
                Ok(listing(path, &entries))
            }
            .await,
        )
    }

    #[tool(description = "Delete a file, or a directory with everything in it, from the sandbox workspace.")]
    async fn delete_file(&self, Parameters(a): Parameters<FilePath>, ext: Extensions) -> CallToolResult {
        let rest = self.rest(&ext);
        result(
            async {
                let id = args::sandbox_id(&a.sandbox_id)?;
                let path = args::relative_path(args::required(&a.path, "path")?, "path")?;
                rest.json(Method::DELETE, &with_query(&sandbox_path(id, "/filesystem/files"), &[("path", Some(path.to_owned()))]), None).await?;
                Ok(format!("Deleted `{path}` successfully."))
            }
            .await,
        )
    }

    #[tool(description = "Upload a file of any kind (images, archives, PDFs) into the sandbox workspace. The bytes travel in \
the call as content_base64 (this server runs remotely and cannot read the client's disk), at most 50 MiB decoded.")]
    async fn upload_file(&self, Parameters(a): Parameters<UploadFile>, ext: Extensions) -> CallToolResult {
        let rest = self.rest(&ext);
        result(
            async {
                let id = args::sandbox_id(&a.sandbox_id)?;
                let path = args::relative_path(args::required(&a.sandbox_path, "sandbox_path")?, "sandbox_path")?;
                let bytes = decode_base64(&a.content_base64)?;
                if bytes.len() > MAX_TRANSFER_FILE_BYTES {
                    return Err(CallError::validation(format!(
                        "file too large: {} bytes exceeds limit of {MAX_TRANSFER_FILE_BYTES} bytes",
                        bytes.len()
                    )));
                }
                let r = rest.multipart(&sandbox_path(id, "/filesystem/upload"), &[("path", path)], bytes.into()).await?;
                let size = r.get("size").and_then(Value::as_u64).unwrap_or_default();
                let stored = r.get("path").and_then(Value::as_str).unwrap_or(path);
                Ok(format!("File uploaded successfully.\n\n**Sandbox:** `{stored}`\n**Size:** {size} bytes"))
            }
            .await,
        )
    }

    #[tool(description = "Download a file of any kind from the sandbox workspace, at most 50 MiB. The result has two text \
blocks: a summary, then the file's bytes base64-encoded (this server runs remotely and cannot write to the client's disk).")]
    async fn download_file(&self, Parameters(a): Parameters<DownloadFile>, ext: Extensions) -> CallToolResult {
        let rest = self.rest(&ext);
        let outcome: CallResult<(String, Vec<u8>)> = async {
            let id = args::sandbox_id(&a.sandbox_id)?;
            let path = args::relative_path(args::required(&a.sandbox_path, "sandbox_path")?, "sandbox_path")?;
            let uri = with_query(&sandbox_path(id, "/filesystem/download"), &[("path", Some(path.to_owned()))]);
            let bytes = rest.bytes(&uri, MAX_TRANSFER_FILE_BYTES).await?;
            Ok((path.to_owned(), bytes.to_vec()))
        }
        .await;
        match outcome {
            Ok((path, bytes)) => CallToolResult::success(vec![
                ContentBlock::text(format!(
                    "File downloaded successfully.\n\n**Sandbox:** `{path}`\n**Size:** {} bytes\n\nThe next content block is the file's content, base64-encoded.",
                    bytes.len()
                )),
                ContentBlock::text(base64::engine::general_purpose::STANDARD.encode(&bytes)),
            ]),
            Err(e) => CallToolResult::error(vec![ContentBlock::text(error_text(&e))]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_read_leniently() {
        assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64("aGVs\nbG8").unwrap(), b"hello");
        assert!(matches!(decode_base64("***"), Err(CallError::Validation(_))));
    }

    #[test]
    fn listings_read_like_shipyard_neo() {
        let entries = [json!({"name": "d", "is_dir": true, "size": null}), json!({"name": "a.txt", "is_dir": false, "size": 3})];
        assert_eq!(listing(".", &entries), "**Directory: .**\n\n📁 d/\n📄 a.txt (3 bytes)");
        assert_eq!(listing("x", &[]), "Directory `x` is empty.");
    }
}
