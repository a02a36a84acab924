//! Request extraction that follows the reference's check order (§1.2):
//! authentication, then the sandbox lookup, then the capability check, then
//! path validation, and only then the body schema. Bodies therefore arrive
//! as bytes and are parsed by [`parse_body`] inside the handler.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::AppState;
use crate::error::BayError;

/// The authenticated owner of a request.
pub struct Owner(pub String);

impl<S> FromRequestParts<S> for Owner
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = BayError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        state.auth.authenticate(&parts.headers).map(Owner)
    }
}

/// Parses a JSON body; an empty body counts as `{}`. Schema errors are 422
/// `validation_error` with the failing field in `details.errors[].loc`.
pub fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, BayError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { bytes };
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let kind = if inner.is_syntax() || inner.is_eof() { "json_invalid" } else { "value_error" };
        let mut loc = vec!["body"];
        if path != "." && kind == "value_error" {
            loc.extend(path.split('.').filter(|p| *p != "?"));
        }
        BayError::request_validation(&loc, inner.to_string(), kind)
    })
}

/// Parses a query string into `T` (422 on failure).
pub fn parse_query<T: DeserializeOwned>(query: Option<&str>) -> Result<T, BayError> {
    let q = query.unwrap_or("");
    serde_urlencoded_from_str(q)
}

fn serde_urlencoded_from_str<T: DeserializeOwned>(q: &str) -> Result<T, BayError> {
    // axum's Query uses serde_urlencoded; reuse it through axum for consistency.
    let uri: axum::http::Uri =
        format!("/?{q}").parse().map_err(|_| BayError::request_validation(&["query"], "invalid query string", "value_error"))?;
    axum::extract::Query::<T>::try_from_uri(&uri)
        .map(|axum::extract::Query(v)| v)
        .map_err(|e| BayError::request_validation(&["query"], e.body_text(), "value_error"))
}

/// A required query parameter (422 when missing, as FastAPI does).
pub fn require<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str, BayError> {
    value.as_deref().ok_or_else(|| BayError::request_validation(&["query", name], "Field required", "missing"))
}

/// Checks `lo <= value <= hi` (422 otherwise).
pub fn check_range(value: i64, lo: i64, hi: i64, loc: &[&str]) -> Result<(), BayError> {
    if value < lo || value > hi {
        let msg =
            if value < lo { format!("Input should be greater than or equal to {lo}") } else { format!("Input should be less than or equal to {hi}") };
        return Err(BayError::request_validation(loc, msg, if value < lo { "greater_than_equal" } else { "less_than_equal" }));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Body {
        code: String,
        #[serde(default)]
        timeout: Option<i64>,
    }

    #[test]
    fn schema_errors_name_the_field() {
        let err = parse_body::<Body>(br#"{"code": 1}"#).unwrap_err();
        assert_eq!(err.status().as_u16(), 422);
        assert_eq!(err.details["errors"][0]["loc"], serde_json::json!(["body", "code"]));
        let err = parse_body::<Body>(br#"{"code": "x", "timeout": "y"}"#).unwrap_err();
        assert_eq!(err.details["errors"][0]["loc"], serde_json::json!(["body", "timeout"]));
    }

    #[test]
    fn malformed_json_is_422_and_empty_body_is_an_empty_object() {
        let err = parse_body::<Body>(b"{not json").unwrap_err();
        assert_eq!(err.status().as_u16(), 422);
        assert_eq!(err.details["errors"][0]["type"], "json_invalid");
        let err = parse_body::<Body>(b"").unwrap_err();
        assert!(err.details["errors"][0]["msg"].as_str().unwrap().contains("code"));
    }

    #[test]
    fn ranges() {
        assert!(check_range(0, 1, 300, &["body", "timeout"]).is_err());
        assert!(check_range(301, 1, 300, &["body", "timeout"]).is_err());
        assert!(check_range(300, 1, 300, &["body", "timeout"]).is_ok());
    }
}
