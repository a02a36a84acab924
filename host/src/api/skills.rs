//! Skills control plane (reference §1.9): payloads, candidates, evaluations,
//! releases, rollback and release health.

use axum::Router;

use super::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
}
