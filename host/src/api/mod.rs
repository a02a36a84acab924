//! The REST API (`/health`, `/v1/...`): thin handlers over the services.

mod admin;
mod browser;
mod cargos;
mod exec;
mod extract;
mod file_text;
mod filesystem;
mod health;
mod history;
mod json_stream;
mod limits;
mod live;
pub mod middleware;
mod multipart;
mod ports;
mod profiles;
#[cfg(test)]
mod proptests;
mod sandboxes;
pub(crate) mod serve;
mod skills;
mod terminal;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{any, delete, get, post};

use crate::auth::Auth;
use crate::config::LimitsConfig;
use crate::error::{BayError, ErrorCode};
use crate::gc::Gc;
use crate::idempotency::Idempotency;
use crate::sandbox::SandboxManager;

/// Everything handlers need, in one place.
#[derive(Clone)]
pub struct AppState {
    pub auth: Arc<Auth>,
    pub sandboxes: Arc<SandboxManager>,
    pub idempotency: Idempotency,
    pub gc: Arc<Gc>,
    /// `limits:` (docs/security.md).
    pub limits: Arc<LimitsConfig>,
    /// Signs and checks port-preview tokens (`ports`).
    pub(crate) previews: Arc<crate::preview::PreviewSigner>,
}

pub fn router(state: AppState) -> Router {
    let v1 = Router::new()
        .route("/sandboxes", post(sandboxes::create).get(sandboxes::list))
        .route("/sandboxes/{id}", get(sandboxes::get).delete(sandboxes::delete))
        .route("/sandboxes/{id}/stop", post(sandboxes::stop))
        .route("/sandboxes/{id}/pause", post(sandboxes::pause))
        .route("/sandboxes/{id}/resume", post(sandboxes::resume))
        .route("/sandboxes/{id}/keepalive", post(sandboxes::keepalive))
        .route("/sandboxes/{id}/extend_ttl", post(sandboxes::extend_ttl))
        .route("/sandboxes/{id}/history", get(history::list))
        .route("/sandboxes/{id}/history/last", get(history::last))
        .route("/sandboxes/{id}/history/{execution_id}", get(history::get).patch(history::annotate))
        .route("/sandboxes/{id}/python/exec", post(exec::python))
        .route("/sandboxes/{id}/browser/exec", post(browser::exec))
        .route("/sandboxes/{id}/browser/exec_batch", post(browser::exec_batch))
        .route("/sandboxes/{id}/browser/skills/{skill_key}/run", post(browser::run_skill))
        .route("/sandboxes/{id}/browser/traces/{trace_ref}", get(browser::trace))
        .route("/sandboxes/{id}/shell/exec", post(exec::shell))
        .route("/sandboxes/{id}/processes", post(live::start).get(live::list))
        .route("/sandboxes/{id}/processes/{pid}", get(live::get))
        .route("/sandboxes/{id}/processes/{pid}/output", get(live::output))
        .route("/sandboxes/{id}/processes/{pid}/stdin", post(live::stdin))
        .route("/sandboxes/{id}/processes/{pid}/signal", post(live::signal))
        .route("/sandboxes/{id}/processes/{pid}/resize", post(live::resize))
        .route("/sandboxes/{id}/terminal", get(terminal::terminal))
        // Port previews: a server in the sandbox, reverse-proxied (`ports`).
        // `POST …/token` is Bay's; any other request beneath is the server's.
        .route("/sandboxes/{id}/ports/{port}/token", post(ports::token).fallback(ports::proxy))
        .route("/sandboxes/{id}/ports/{port}", any(ports::proxy))
        .route("/sandboxes/{id}/ports/{port}/", any(ports::proxy))
        .route("/sandboxes/{id}/ports/{port}/{*path}", any(ports::proxy))
        .route(
            "/sandboxes/{id}/filesystem/files",
            // Writes stream the content (bounded by their own limit).
            get(filesystem::read).put(filesystem::write).layer(DefaultBodyLimit::disable()).delete(filesystem::delete),
        )
        .route("/sandboxes/{id}/filesystem/directories", get(filesystem::list))
        // Uploads are streamed to the runtime, never buffered: no body limit
        // (`api::limits`), bounded text fields (`api::multipart`).
        .route("/sandboxes/{id}/filesystem/upload", post(filesystem::upload))
        .route("/sandboxes/{id}/filesystem/download", get(filesystem::download))
        .route("/profiles", get(profiles::list))
        .route("/cargos", post(cargos::create).get(cargos::list))
        .route("/cargos/{id}", get(cargos::get).delete(cargos::delete))
        .route("/admin/gc/run", post(admin::run_gc))
        .route("/admin/gc/status", get(admin::gc_status))
        .route("/admin/plugins", get(admin::plugins))
        .route("/admin/keys", post(admin::create_key).get(admin::list_keys))
        .route("/admin/keys/{id}", delete(admin::revoke_key))
        .merge(skills::routes())
        // After routing: each route's body limit, by its matched path.
        .route_layer(axum::middleware::from_fn_with_state(state.limits.clone(), limits::route_body_limit));

    let limits = state.limits.clone();
    let router = Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .nest("/v1", v1)
        .fallback(|uri: axum::http::Uri| async move { BayError::not_found(format!("Not Found: {}", crate::error::echo(uri.path()))) })
        .method_not_allowed_fallback(|| async { BayError::new(ErrorCode::MethodNotAllowed, "Method Not Allowed") })
        // Body limits are `limits::route_body_limit`'s, per route.
        .layer(DefaultBodyLimit::disable())
        .with_state(state);
    guarded(router, limits)
}

/// What every route gets, REST and `/mcp` alike: panics answered with the
/// envelope, head limits (414/431), early answers drained, a request id.
pub(crate) fn guarded(router: Router, limits: Arc<crate::config::LimitsConfig>) -> Router {
    router
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(middleware::panic_response))
        .layer(axum::middleware::from_fn_with_state(limits.clone(), limits::head_limits))
        .layer(axum::middleware::from_fn_with_state(limits, limits::drain_unread_body))
        .layer(axum::middleware::from_fn(middleware::request_context))
}

/// The caller's sandbox for a capability call: found (owner-checked), its
/// profile, and the capability in it (else 400 `capability_not_supported`).
pub(super) async fn sandbox_for(
    state: &AppState,
    owner: &str,
    id: &str,
    capability: &str,
) -> crate::error::BayResult<(crate::db::sandboxes::Sandbox, crate::config::ProfileConfig)> {
    let sandbox = state.sandboxes.find_for_call(owner, id).await?;
    let profile = state.sandboxes.profile_of(&sandbox)?.clone();
    state.sandboxes.check_capability(&profile, capability)?;
    Ok((sandbox, profile))
}
