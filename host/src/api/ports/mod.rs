//! Port previews: `/v1/sandboxes/{id}/ports/{port}/…` reverse-proxies HTTP
//! and WebSocket to a server listening on that port inside the sandbox.
//!
//! Bay reaches the port through its runtime's tunnel (`GET /proxy/tcp/{port}`
//! with `Upgrade: tcp`, runtimes/ship/src/tunnel.rs): the one address Bay
//! already talks to, so nothing new is published on the host and every
//! engine and driver works alike. Over the tunnel Bay speaks HTTP/1.1 to the
//! user's server with hyper, one tunnel per request (and per WebSocket).
//!
//! Authorised by the API key, or by a preview token (`POST …/token`,
//! host/src/preview.rs) given as `?bay_token=` — answered with a cookie
//! scoped to the preview's path, so the page's own requests carry it — or
//! as that cookie. Bay's credentials never reach the user's server: the
//! `Authorization` header that carried the key, the token parameter and
//! the cookie are removed before forwarding.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, OriginalUri, Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::json;

mod pump;

use super::AppState;
use super::extract::{Owner, check_range, parse_optional_body};
use crate::adapter::{LiveRequest, RuntimeLink};
use crate::auth::Caller;
use crate::error::{BayError, BayResult, ErrorCode};
use crate::plugins::outbound::TOKEN_HEADER;
use crate::preview::PreviewGrant;

/// The query parameter and the cookie that carry a preview token.
pub(crate) const TOKEN_PARAM: &str = "bay_token";
pub(crate) const TOKEN_COOKIE: &str = "bay_preview";
/// How long a token lives unless asked otherwise, and at most.
const DEFAULT_TTL_S: i64 = 3600;
const MAX_TTL_S: i64 = 7 * 86_400;
/// How long the user's server may take to answer (a long poll is fine).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Deserialize)]
pub struct PortPath {
    id: String,
    port: String,
}

fn parse_port(raw: &str) -> BayResult<u16> {
    let n: i64 = raw.parse().map_err(|_| {
        BayError::request_validation(&["path", "port"], "Input should be a valid integer, unable to parse string as an integer", "int_parsing")
    })?;
    check_range(n, 1, 65_535, &["path", "port"])?;
    Ok(n as u16)
}

fn now_s() -> i64 {
    crate::ids::now_micros() / 1_000_000
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    #[serde(default)]
    ttl_seconds: Option<i64>,
}

/// `POST /v1/sandboxes/{id}/ports/{port}/token` → a URL a browser can open.
pub async fn token(
    State(state): State<AppState>,
    Owner(owner): Owner,
    Path(p): Path<PortPath>,
    headers: HeaderMap,
    body: Bytes,
) -> BayResult<Response> {
    let port = parse_port(&p.port)?;
    let sandbox = state.sandboxes.find_for_call(&owner, &p.id).await?;
    let ttl = parse_optional_body::<TokenRequest>(&body)?.and_then(|r| r.ttl_seconds).unwrap_or(DEFAULT_TTL_S);
    check_range(ttl, 1, MAX_TTL_S, &["body", "ttl_seconds"])?;
    let expires_at = now_s() + ttl;
    let token = state.previews.sign(&PreviewGrant { sandbox_id: sandbox.id.clone(), port, owner, expires_at });
    let path = format!("/v1/sandboxes/{}/ports/{port}/?{TOKEN_PARAM}={token}", sandbox.id);
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let proto = headers.get("x-forwarded-proto").and_then(|h| h.to_str().ok()).unwrap_or("http");
    let url = host.map(|h| format!("{proto}://{h}{path}"));
    let expires = crate::ids::format_ts(expires_at * 1_000_000);
    Ok((StatusCode::CREATED, axum::Json(json!({ "token": token, "port": port, "path": path, "url": url, "expires_at": expires }))).into_response())
}

/// Any method on `/v1/sandboxes/{id}/ports/{port}[/…]`.
pub async fn proxy(State(state): State<AppState>, Path(p): Path<PortPath>, req: Request) -> BayResult<Response> {
    let (mut parts, body) = req.into_parts();
    // Authentication first, then the sandbox, then the port (the check order
    // of every route, host/src/api/extract.rs).
    let (owner, via, strip_auth) = authorise(&state, &mut parts, &p.id, &p.port).await?;
    let (sandbox, profile) = super::sandbox_for(&state, &owner, &p.id, "shell").await?;
    let port = parse_port(&p.port)?;
    let prefix = format!("/v1/sandboxes/{}/ports/{port}", sandbox.id);
    let original = parts.extensions.get::<OriginalUri>().map(|u| u.0.clone()).unwrap_or_else(|| parts.uri.clone());
    let (rest, query) = forwarded_target(original.path(), original.query());
    let upgrade = parts.headers.contains_key(header::UPGRADE);
    let is_get = matches!(parts.method, Method::GET | Method::HEAD);
    // A browser opening a token URL: set the cookie and send it on to the
    // same URL without the token, so neither the page (its `location`, its
    // `Referer`s) nor the history keeps it. `…/ports/8000` → `…/ports/8000/`,
    // so the page's relative links resolve beneath the preview.
    if is_get && !upgrade && (rest.is_none() || matches!(via, Via::Query(_))) {
        let q = query.map(|q| format!("?{q}")).unwrap_or_default();
        let to = format!("{prefix}/{}{q}", rest.unwrap_or_default());
        let status = if matches!(via, Via::Query(_)) { StatusCode::SEE_OTHER } else { StatusCode::PERMANENT_REDIRECT };
        let mut resp = (status, [(header::LOCATION, to)]).into_response();
        if let Via::Query(grant) = &via {
            set_cookie(&state, &mut resp, grant, &prefix, &parts.headers);
        }
        return Ok(resp);
    }
    let target = state.sandboxes.tunnel(&sandbox, &profile).await?;
    let in_use = Arc::new(target.in_use);
    let io = open_tunnel(&target.link, port).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| BayError::ship(format!("the tunnel to port {port} failed: {e}")))?;
    let held = in_use.clone();
    tokio::spawn(async move {
        let _in_use = held;
        let _ = conn.with_upgrades().await;
    });

    let client_upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
    let path = format!("/{}{}", rest.unwrap_or_default(), query.map(|q| format!("?{q}")).unwrap_or_default());
    let mut out = hyper::Request::builder().method(parts.method.clone()).uri(path).body(body).map_err(|e| BayError::internal(e.to_string()))?;
    *out.headers_mut() = forwarded_headers(&parts, strip_auth, port, &prefix);
    let mut resp = match tokio::time::timeout(ANSWER_TIMEOUT, sender.send_request(out)).await {
        Err(_) => return Err(BayError::timeout(format!("the server on port {port} did not answer within {}s", ANSWER_TIMEOUT.as_secs()))),
        Ok(Err(e)) => return Err(BayError::ship(format!("the server on port {port} closed the connection: {e}")).with("port", port)),
        Ok(Ok(r)) => r,
    };

    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let server_upgrade = hyper::upgrade::on(&mut resp);
        let Some(client_upgrade) = client_upgrade else {
            return Err(BayError::ship(format!("the server on port {port} switched protocols unasked")));
        };
        let until = via.expires_at();
        tokio::spawn(async move {
            let _in_use = in_use;
            if let (Ok(c), Ok(s)) = (client_upgrade.await, server_upgrade.await) {
                pump::pump(TokioIo::new(c), TokioIo::new(s), pump::IDLE, until).await;
            }
        });
        let (parts, _) = resp.into_parts();
        return Ok(Response::from_parts(parts, Body::empty()));
    }

    let (mut rparts, rbody) = resp.into_parts();
    if rparts.headers.contains_key(header::TRANSFER_ENCODING) {
        rparts.headers.remove(header::CONTENT_LENGTH);
    }
    strip_hop_by_hop(&mut rparts.headers, false);
    if let Some(loc) = rparts.headers.get(header::LOCATION).and_then(|l| l.to_str().ok())
        && let Some(moved) = beneath_prefix(loc, port, &prefix)
        && let Ok(v) = HeaderValue::from_str(&moved)
    {
        rparts.headers.insert(header::LOCATION, v);
    }
    scope_cookies(&mut rparts.headers, &prefix);
    let mut resp = Response::from_parts(rparts, Body::new(rbody));
    if let Via::Query(grant) = &via {
        set_cookie(&state, &mut resp, grant, &prefix, &parts.headers);
    }
    resp.extensions_mut().insert(super::middleware::Passthrough);
    Ok(resp)
}

/// The preview cookie for `grant`: scoped to the preview, `Secure` when
/// the client came over HTTPS (as a TLS-terminating proxy says).
fn set_cookie(state: &AppState, resp: &mut Response, grant: &PreviewGrant, prefix: &str, request: &HeaderMap) {
    let max_age = (grant.expires_at - now_s()).max(0);
    let https = request.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("https"));
    let secure = if https { "; Secure" } else { "" };
    let cookie = format!("{TOKEN_COOKIE}={}; Path={prefix}/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}", state.previews.sign(grant));
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// The server's cookies stay the preview's: one named like Bay's is
/// dropped, and a `Path` is moved beneath the prefix (a server's `Path=/`
/// would otherwise reach Bay's API and every other preview).
fn scope_cookies(h: &mut HeaderMap, prefix: &str) {
    let cookies: Vec<HeaderValue> = h.get_all(header::SET_COOKIE).iter().cloned().collect();
    h.remove(header::SET_COOKIE);
    for c in cookies {
        let Ok(text) = c.to_str() else { continue };
        if text.trim_start().split('=').next().is_some_and(|name| name.trim() == TOKEN_COOKIE) {
            continue;
        }
        let scoped = text
            .split(';')
            .map(|attr| {
                let t = attr.trim();
                match t.split_once('=') {
                    Some((k, v)) if k.trim().eq_ignore_ascii_case("path") && !v.trim().starts_with(&format!("{prefix}/")) => {
                        format!(" Path={prefix}{}", if v.trim().starts_with('/') { v.trim() } else { "/" })
                    }
                    _ => attr.to_owned(),
                }
            })
            .collect::<Vec<_>>()
            .join(";");
        if let Ok(v) = HeaderValue::from_str(&scoped) {
            h.append(header::SET_COOKIE, v);
        }
    }
}

/// How the caller proved its right.
enum Via {
    ApiKey,
    /// `?bay_token=` (a cookie is set from it).
    Query(PreviewGrant),
    Cookie(PreviewGrant),
}

impl Via {
    /// When what let the caller in stops doing so (unix seconds).
    fn expires_at(&self) -> Option<i64> {
        match self {
            Via::ApiKey => None,
            Via::Query(g) | Via::Cookie(g) => Some(g.expires_at),
        }
    }
}

/// Who may use the preview, how they proved it, and whether the request's
/// `Authorization` is Bay's (a key: never forwarded) rather than the page's.
async fn authorise(state: &AppState, parts: &mut Parts, id: &str, port: &str) -> BayResult<(String, Via, bool)> {
    let has_auth = parts.headers.contains_key(header::AUTHORIZATION);
    let from_query = parts.uri.query().and_then(|q| form_value(q, '&', TOKEN_PARAM));
    let from_cookie = || parts.headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|c| form_value(c, ';', TOKEN_COOKIE));
    let query = from_query.is_some();
    if let Some(token) = from_query.or_else(from_cookie) {
        let refused = |why: String| BayError::unauthorized(format!("Preview refused: {why}")).with("reason", "preview_token");
        let verdict = match state.previews.verify(&percent_decode(&token), now_s()) {
            Ok(g) if g.sandbox_id == id && g.port.to_string() == port => Ok(g),
            Ok(g) => Err(refused(format!("the token is for port {} of sandbox {}", g.port, g.sandbox_id))),
            Err(e) => Err(refused(e.to_string())),
        };
        match verdict {
            Ok(grant) => {
                let peer = parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0);
                let bay_key = has_auth && state.auth.authenticate(&parts.headers, peer).await.is_ok_and(|c| c.key_id.is_some());
                let via = if query { Via::Query(grant.clone()) } else { Via::Cookie(grant.clone()) };
                return Ok((grant.owner, via, bay_key));
            }
            // A stale cookie beside an API key: the key decides.
            Err(e) if !has_auth => return Err(e),
            Err(_) => {}
        }
    }
    let caller = Caller::from_request_parts(parts, state).await?;
    // A preview's page shares Bay's origin: with anonymous access on, its
    // scripts could otherwise open any owner's previews.
    if caller.key_id.is_none() {
        return Err(BayError::unauthorized("A preview needs an API key or a preview token (anonymous access does not extend to previews)")
            .with("reason", "preview_token"));
    }
    Ok((caller.owner, Via::ApiKey, true))
}

/// The value of `name` in `a=1&b=2` (or `a=1; b=2`).
fn form_value(s: &str, sep: char, name: &str) -> Option<String> {
    s.split(sep).map(str::trim).find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')).map(str::to_owned)
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("v={s}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default()
}

/// What follows `/v1/sandboxes/{id}/ports/{port}` (`None` when nothing, not
/// even a slash, does) and the query without the token, both as sent.
fn forwarded_target<'a>(path: &'a str, query: Option<&'a str>) -> (Option<&'a str>, Option<String>) {
    let rest = path.splitn(7, '/').nth(6);
    let query = query
        .map(|q| q.split('&').filter(|kv| *kv != TOKEN_PARAM && !kv.starts_with(&format!("{TOKEN_PARAM}="))).collect::<Vec<_>>().join("&"))
        .filter(|q| !q.is_empty());
    (rest, query)
}

/// Hop-by-hop headers are the proxy's own (RFC 9110 §7.6.1); an upgrade
/// keeps `Connection` and `Upgrade`, which ask for it.
fn strip_hop_by_hop(h: &mut HeaderMap, upgrade: bool) {
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_ascii_lowercase()).collect::<Vec<_>>())
        .filter(|n| !upgrade || n != "upgrade")
        .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
        .collect();
    for n in named {
        h.remove(n);
    }
    for n in ["keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding"] {
        h.remove(n);
    }
    if !upgrade {
        h.remove(header::CONNECTION);
        h.remove(header::UPGRADE);
    }
}

/// The request headers the user's server sees: the client's, less Bay's
/// credentials and the hop-by-hop ones, with `Host: localhost:{port}` (what
/// a dev server's host check accepts) and the `X-Forwarded-*` set.
fn forwarded_headers(parts: &Parts, strip_auth: bool, port: u16, prefix: &str) -> HeaderMap {
    let mut h = parts.headers.clone();
    let upgrade = h.contains_key(header::UPGRADE);
    strip_hop_by_hop(&mut h, upgrade);
    let bay_bearer = h.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).is_some_and(|v| v.trim_start().starts_with("Bearer sk-bay-"));
    if strip_auth || bay_bearer {
        h.remove(header::AUTHORIZATION);
        h.remove("x-owner");
    }
    h.remove(TOKEN_HEADER);
    let cookies: Vec<String> = h
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';').map(str::trim).filter(|c| !c.starts_with(&format!("{TOKEN_COOKIE}="))).map(str::to_owned).collect::<Vec<_>>())
        .filter(|c| !c.is_empty())
        .collect();
    h.remove(header::COOKIE);
    if let Ok(v) = HeaderValue::from_str(&cookies.join("; "))
        && !cookies.is_empty()
    {
        h.insert(header::COOKIE, v);
    }
    let original_host = parts.headers.get(header::HOST).cloned();
    h.insert(header::HOST, HeaderValue::from_str(&format!("localhost:{port}")).expect("a valid host"));
    if let Some(host) = original_host {
        h.insert("x-forwarded-host", host);
    }
    if !h.contains_key("x-forwarded-proto") {
        h.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    }
    h.remove("forwarded");
    h.remove("x-forwarded-for");
    if let Some(peer) = parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        && let Ok(v) = HeaderValue::from_str(&peer.0.ip().to_string())
    {
        h.insert("x-forwarded-for", v);
    }
    if let Some(referer) = h.get(header::REFERER).and_then(|v| v.to_str().ok()).map(str::to_owned)
        && let Some((path, q)) = referer.split_once('?')
    {
        let (_, q) = forwarded_target("", Some(q));
        let cleaned = format!("{path}{}", q.map(|q| format!("?{q}")).unwrap_or_default());
        if let Ok(v) = HeaderValue::from_str(&cleaned) {
            h.insert(header::REFERER, v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(prefix) {
        h.insert("x-forwarded-prefix", v);
    }
    h
}

/// A redirect the server meant for its own root, moved beneath the preview.
fn beneath_prefix(location: &str, port: u16, prefix: &str) -> Option<String> {
    if location == prefix || location.starts_with(&format!("{prefix}/")) || location.starts_with(&format!("{prefix}?")) {
        return None;
    }
    if location.starts_with('/') && !location.starts_with("//") {
        return Some(format!("{prefix}{location}"));
    }
    for origin in [format!("http://localhost:{port}"), format!("http://127.0.0.1:{port}")] {
        if let Some(rest) = location.strip_prefix(&origin)
            && (rest.is_empty() || rest.starts_with('/'))
        {
            return Some(format!("{prefix}{}", if rest.is_empty() { "/" } else { rest }));
        }
    }
    None
}

/// Opens the runtime's tunnel to `port`.
async fn open_tunnel(link: &RuntimeLink, port: u16) -> BayResult<reqwest::Upgraded> {
    let req = LiveRequest { method: Method::GET, path: format!("/proxy/tcp/{port}"), query: vec![], body: None };
    let mut r = crate::live::client()
        .get(crate::live::url(link, &req, None)?)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "tcp")
        .timeout(Duration::from_secs(30));
    if let Some(token) = &link.token {
        r = r.header(TOKEN_HEADER, &**token);
    }
    let resp = r.send().await.map_err(|e| BayError::ship(format!("the runtime could not be reached: {e}")))?;
    let status = resp.status().as_u16();
    if status == 101 {
        return resp.upgrade().await.map_err(|e| BayError::ship(format!("the runtime's tunnel failed: {e}")));
    }
    let text = resp.text().await.unwrap_or_default();
    let detail = serde_json::from_str::<serde_json::Value>(&text).ok().and_then(|v| v["detail"].as_str().map(str::to_owned)).unwrap_or(text);
    Err(match status {
        404 | 405 => BayError::new(ErrorCode::CapabilityNotSupported, "This sandbox's runtime has no port tunnel (it needs Ship's /proxy/tcp)")
            .with("capability", "ports"),
        502 => BayError::ship(detail).with("port", port).with("reason", "port_not_listening"),
        403 => BayError::forbidden(detail).with("port", port),
        _ => BayError::ship(detail).with("runtime_status", status),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_is_what_follows_the_port_with_the_token_removed() {
        let p = "/v1/sandboxes/sb-1/ports/8000";
        assert_eq!(forwarded_target(p, None), (None, None));
        assert_eq!(forwarded_target(&format!("{p}/"), None), (Some(""), None));
        assert_eq!(forwarded_target(&format!("{p}/a/b%20c"), Some("x=1&bay_token=bpv1.q&y")), (Some("a/b%20c"), Some("x=1&y".into())));
        assert_eq!(forwarded_target(&format!("{p}/a"), Some("bay_token=t")), (Some("a"), None));
    }

    #[test]
    fn redirects_to_the_servers_root_stay_beneath_the_preview() {
        let prefix = "/v1/sandboxes/sb-1/ports/8000";
        assert_eq!(beneath_prefix("/login", 8000, prefix).as_deref(), Some("/v1/sandboxes/sb-1/ports/8000/login"));
        assert_eq!(beneath_prefix("http://localhost:8000", 8000, prefix).as_deref(), Some("/v1/sandboxes/sb-1/ports/8000/"));
        assert_eq!(beneath_prefix("http://127.0.0.1:8000/x?y", 8000, prefix).as_deref(), Some("/v1/sandboxes/sb-1/ports/8000/x?y"));
        assert_eq!(beneath_prefix("//cdn.example/x", 8000, prefix), None);
        assert_eq!(beneath_prefix("https://example.org/", 8000, prefix), None);
        assert_eq!(beneath_prefix("next", 8000, prefix), None);
        // A server that already prefixes its links (X-Forwarded-Prefix).
        assert_eq!(beneath_prefix("/v1/sandboxes/sb-1/ports/8000/login", 8000, prefix), None);
    }

    #[test]
    fn bays_credentials_are_not_forwarded() {
        let req = axum::http::Request::get("/x")
            .header("authorization", "Bearer sk-bay-1")
            .header("cookie", "a=1; bay_preview=bpv1.t; b=2")
            .header("x-bay-token", "secret")
            .header("connection", "keep-alive, x-hop")
            .header("x-hop", "1")
            .header("host", "bay.example:8114")
            .body(())
            .unwrap();
        let (parts, _) = req.into_parts();
        let h = forwarded_headers(&parts, true, 8000, "/v1/sandboxes/s/ports/8000");
        assert!(h.get("authorization").is_none());
        assert!(h.get("x-bay-token").is_none());
        assert!(h.get("x-hop").is_none() && h.get("connection").is_none());
        assert_eq!(h["cookie"], "a=1; b=2");
        assert_eq!(h["host"], "localhost:8000");
        assert_eq!(h["x-forwarded-host"], "bay.example:8114");
        assert_eq!(h["x-forwarded-prefix"], "/v1/sandboxes/s/ports/8000");
        // With a preview token, the Authorization header is the page's own,
        // unless it is plainly a Bay key.
        assert!(forwarded_headers(&parts, false, 8000, "/p").get("authorization").is_none());
        let mut parts = parts;
        parts.headers.insert("authorization", HeaderValue::from_static("Bearer page-own"));
        parts.headers.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        parts.headers.insert("referer", HeaderValue::from_static("http://bay/v1/sandboxes/s/ports/8000/?a=1&bay_token=bpv1.x"));
        let h = forwarded_headers(&parts, false, 8000, "/p");
        assert_eq!(h["authorization"], "Bearer page-own");
        assert!(h.get("x-forwarded-for").is_none(), "no peer known here, and the client's own is not trusted");
        assert_eq!(h["referer"], "http://bay/v1/sandboxes/s/ports/8000/?a=1");
    }

    #[test]
    fn the_servers_cookies_stay_beneath_the_preview() {
        let mut h = HeaderMap::new();
        for c in ["sid=1; Path=/; HttpOnly", "bay_preview=forged; Path=/", "a=2", "b=3; path=/v1/sandboxes/s/ports/8000/x", "c=4; Path=/app"] {
            h.append(header::SET_COOKIE, HeaderValue::from_static(c));
        }
        scope_cookies(&mut h, "/v1/sandboxes/s/ports/8000");
        let got: Vec<&str> = h.get_all(header::SET_COOKIE).iter().map(|v| v.to_str().unwrap()).collect();
        assert_eq!(
            got,
            [
                "sid=1; Path=/v1/sandboxes/s/ports/8000/; HttpOnly",
                "a=2",
                "b=3; path=/v1/sandboxes/s/ports/8000/x",
                "c=4; Path=/v1/sandboxes/s/ports/8000/app"
            ]
        );
    }

    #[test]
    fn a_port_is_a_number_from_1_to_65535() {
        assert_eq!(parse_port("8000").unwrap(), 8000);
        for bad in ["0", "65536", "-1", "http", ""] {
            let e = parse_port(bad).unwrap_err();
            assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        }
    }
}
