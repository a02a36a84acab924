//! The per-session secret between Bay and a runtime.
//!
//! Bay starts every container of a session with `BAY_RUNTIME_TOKEN=<random>`
//! and sends `X-Bay-Token: <same>` on every request. When the variable is
//! set (and not empty) the runtime answers every request but `GET /health`
//! without that header, or with another value, with 401; unset, nothing
//! changes (images started by an older Bay keep working). Another sandbox
//! on the same network therefore cannot drive this one.
//!
//! The code the runtime serves runs as the same user as the runtime and must
//! not be able to read the secret, so [`RuntimeToken::take_from_env`], at
//! the top of `main` while the process has one thread:
//! * removes it from the environment, so no child (Python kernel, shell
//!   command, background process, agent-browser, Chromium) inherits it;
//! * overwrites the value in the process' initial environment block, which
//!   `/proc/<pid>/environ` would otherwise keep showing;
//! * marks the process not dumpable (`PR_SET_DUMPABLE` 0): its `/proc/<pid>`
//!   files become root's and same-user `ptrace` is refused, so its memory
//!   cannot be read either. (Children are dumpable again after `execve`.)
//!
//! Spawners also `env_remove` it ([`TOKEN_ENV`]) in case it gets back into
//! the environment some other way.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::{Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use subtle::ConstantTimeEq;

use crate::error::AppError;

/// Environment variable carrying the secret.
pub const TOKEN_ENV: &str = "BAY_RUNTIME_TOKEN";
/// Request header carrying the secret.
pub const TOKEN_HEADER: &str = "x-bay-token";

/// The expected secret; `None` when the check is off.
#[derive(Clone, Default)]
pub struct RuntimeToken(Option<Arc<[u8]>>);

impl std::fmt::Debug for RuntimeToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "RuntimeToken(set)" } else { "RuntimeToken(off)" })
    }
}

impl RuntimeToken {
    /// `None` or an empty value turn the check off.
    pub fn new(value: Option<&str>) -> Self {
        Self(value.filter(|v| !v.is_empty()).map(|v| Arc::from(v.as_bytes())))
    }

    /// Reads [`TOKEN_ENV`] and removes it from this process' environment.
    ///
    /// Call it first thing in `main`, while the process has one thread.
    pub fn take_from_env() -> Self {
        let value = std::env::var(TOKEN_ENV).ok();
        if std::env::var_os(TOKEN_ENV).is_some() {
            // SAFETY: called at the top of main (see above): no other thread
            // can be reading or changing the environment concurrently.
            unsafe {
                scrub_environ_value(TOKEN_ENV);
                std::env::remove_var(TOKEN_ENV);
            }
        }
        let token = Self::new(value.as_deref());
        if token.is_enabled() {
            // SAFETY: plain prctl on this process.
            unsafe {
                libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
            }
        }
        token
    }

    pub fn is_enabled(&self) -> bool {
        self.0.is_some()
    }

    /// Whether a request carrying `presented` passes (constant time in the
    /// content; a length mismatch fails without comparing).
    pub fn accepts(&self, presented: Option<&[u8]>) -> bool {
        match (&self.0, presented) {
            (None, _) => true,
            (Some(expected), Some(p)) => bool::from(expected.as_ref().ct_eq(p)),
            (Some(_), None) => false,
        }
    }
}

unsafe extern "C" {
    static mut environ: *mut *mut libc::c_char;
}

/// Overwrites the value of `name` in place in every `environ` entry.
///
/// # Safety
/// No other thread may use the environment meanwhile.
unsafe fn scrub_environ_value(name: &str) {
    let prefix = format!("{name}=");
    // SAFETY: `environ` is a NULL-terminated array of NUL-terminated strings
    // in writable memory (the initial block on the stack, or the heap).
    unsafe {
        let mut p = environ;
        if p.is_null() {
            return;
        }
        while !(*p).is_null() {
            let entry = std::ffi::CStr::from_ptr(*p).to_bytes();
            if entry.starts_with(prefix.as_bytes()) {
                let value = (*p).add(prefix.len());
                for i in 0..entry.len() - prefix.len() {
                    std::ptr::write_volatile(value.add(i), 0);
                }
            }
            p = p.add(1);
        }
    }
}

/// axum middleware (`middleware::from_fn_with_state(token, require_token)`).
pub async fn require_token(State(token): State<RuntimeToken>, req: Request, next: Next) -> Response {
    if !token.is_enabled() || (req.method() == Method::GET && req.uri().path() == "/health") {
        return next.run(req).await;
    }
    let presented = req.headers().get(TOKEN_HEADER).map(|v| v.as_bytes());
    if token.accepts(presented) {
        next.run(req).await
    } else {
        AppError::new(StatusCode::UNAUTHORIZED, "Missing or invalid X-Bay-Token header").into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::{Router, body::Body, middleware, routing::get};
    use tower::ServiceExt;

    fn app(token: RuntimeToken) -> Router {
        Router::new()
            .route("/health", get(|| async { "ok" }))
            .route("/x", get(|| async { "x" }).post(|| async { "posted" }))
            .layer(middleware::from_fn_with_state(token, require_token))
    }

    async fn status(app: &Router, method: &str, uri: &str, header: Option<&str>) -> (u16, String) {
        let mut req = axum::http::Request::builder().method(method).uri(uri);
        if let Some(h) = header {
            req = req.header("X-Bay-Token", h);
        }
        let resp = app.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
        let s = resp.status().as_u16();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
        (s, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn token_is_required_except_for_health() {
        let a = app(RuntimeToken::new(Some("s3cret")));
        assert_eq!(status(&a, "GET", "/health", None).await.0, 200);
        let (s, body) = status(&a, "GET", "/x", None).await;
        assert_eq!(s, 401);
        assert_eq!(body, r#"{"detail":"Missing or invalid X-Bay-Token header"}"#);
        assert_eq!(status(&a, "POST", "/x", Some("wrong")).await.0, 401);
        assert_eq!(status(&a, "POST", "/x", Some("s3cret-")).await.0, 401);
        assert_eq!(status(&a, "POST", "/x", Some("")).await.0, 401);
        assert_eq!(status(&a, "POST", "/x", Some("s3cret")).await, (200, "posted".into()));
        // Only GET /health is open; an unknown path is not a way around.
        assert_eq!(status(&a, "POST", "/health", None).await.0, 401);
        assert_eq!(status(&a, "GET", "/nope", None).await.0, 401);
    }

    #[tokio::test]
    async fn unset_or_empty_token_changes_nothing() {
        for t in [RuntimeToken::new(None), RuntimeToken::new(Some(""))] {
            assert!(!t.is_enabled());
            let a = app(t);
            assert_eq!(status(&a, "GET", "/x", None).await, (200, "x".into()));
            assert_eq!(status(&a, "GET", "/x", Some("anything")).await.0, 200);
        }
    }
}
