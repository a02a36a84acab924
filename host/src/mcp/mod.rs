//! The built-in MCP server: the Model Context Protocol over Streamable HTTP
//! at `/mcp` (rmcp's `StreamableHttpService`), with the tools of Shipyard
//! Neo's stdio server plus a few it lacks (docs/mcp.md lists them).
//!
//! Design: every tool is one REST call made **in-process** against Bay's own
//! router ([`crate::api::router`], driven with tower's `oneshot`, see
//! [`rest`]). The caller's `Authorization` / `X-Owner` headers and the MCP
//! request's id travel with it, so authentication, owner isolation,
//! validation, limits and error envelopes are exactly those of the REST API;
//! there is no second path into the sandbox core to keep in step with it. The
//! cost is a JSON encode/decode per call, which is nothing next to a runtime
//! round trip.
//!
//! The transport runs stateless (no `Mcp-Session-Id`, a JSON answer per POST):
//! nothing is kept between requests, so every request is authenticated on its
//! own, any replica can answer any request, and a Bay restart loses nothing.
//! A request whose credentials REST would refuse is refused at `/mcp` with the
//! same 401 envelope before it reaches the MCP layer ([`gate`]).

mod args;
mod rest;
mod server;
mod text;
mod tools;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use crate::auth::Auth;

/// Where the MCP endpoint is served.
pub(crate) const PATH: &str = "/mcp";

/// Tool output (stdout, file contents, tracebacks) is cut to this many
/// characters, as Shipyard Neo's `SHIPYARD_MAX_TOOL_TEXT_CHARS` default does.
pub(crate) const MAX_TOOL_TEXT_CHARS: usize = 12_000;
/// `write_file` content limit in bytes (Shipyard Neo's `SHIPYARD_MAX_WRITE_FILE_BYTES`).
pub(crate) const MAX_WRITE_FILE_BYTES: usize = 5 << 20;
/// `upload_file` / `download_file` limit in bytes, before base64
/// (Shipyard Neo's `SHIPYARD_MAX_TRANSFER_FILE_BYTES`).
pub(crate) const MAX_TRANSFER_FILE_BYTES: usize = 50 << 20;
/// One tool's REST call may take this long (Shipyard Neo's `SHIPYARD_SDK_CALL_TIMEOUT`).
pub(crate) const CALL_TIMEOUT_SECS: u64 = 600;
/// `create_sandbox` defaults (Shipyard Neo's `SHIPYARD_DEFAULT_PROFILE` / `SHIPYARD_DEFAULT_TTL`).
pub(crate) const DEFAULT_PROFILE: &str = "python-default";
pub(crate) const DEFAULT_TTL_SECS: i64 = 3600;
/// A POST to `/mcp` may carry an upload of [`MAX_TRANSFER_FILE_BYTES`] in base64.
const MAX_REQUEST_BODY_BYTES: usize = MAX_TRANSFER_FILE_BYTES / 3 * 4 + (1 << 20);

/// Adds `/mcp` to Bay's REST router, behind the same outer layers as REST
/// (`api::guarded`); tool calls go back into `rest`.
pub(crate) fn mount(rest: Router, auth: Arc<Auth>, limits: Arc<crate::config::LimitsConfig>) -> Router {
    rest.clone().merge(crate::api::guarded(router(rest, auth), limits))
}

/// The `/mcp` route alone, with the auth gate.
fn router(rest: Router, auth: Arc<Auth>) -> Router {
    let tools = Arc::new(server::BayMcp::tools());
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_max_request_body_bytes(MAX_REQUEST_BODY_BYTES)
        // rmcp's default accepts only loopback `Host`s (a DNS-rebinding guard
        // for unauthenticated local servers). Every call here carries Bay's
        // credentials, and the REST API beside it has no such check either.
        .disable_allowed_hosts();
    let service =
        StreamableHttpService::new(move || Ok(server::BayMcp::new(rest.clone(), tools.clone())), Arc::new(NeverSessionManager::default()), config);
    Router::new().route_service(PATH, service).layer(axum::middleware::from_fn_with_state(auth, gate))
}

/// Authenticates an MCP request exactly as REST does (`Bearer` key, or
/// `X-Owner` when anonymous access is on); a refusal is REST's 401 envelope.
async fn gate(State(auth): State<Arc<Auth>>, req: Request, next: Next) -> Response {
    let peer = req.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0);
    match auth.authenticate(req.headers(), peer).await {
        Ok(_) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}
