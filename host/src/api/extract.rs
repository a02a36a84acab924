//! Request extraction that follows Shipyard Neo's check order (docs/compatibility.md):
//! authentication, then the sandbox lookup, then the capability check, then
//! path validation, and only then the body schema. Bodies therefore arrive
//! as bytes and are parsed by [`parse_body`] inside the handler.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::AppState;
use crate::auth::Caller;
use crate::error::BayError;

/// The authenticated caller: owner and role.
impl<S> FromRequestParts<S> for Caller
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = BayError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let state = AppState::from_ref(state);
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
        let caller = state.auth.authenticate(&parts.headers, peer).await?;
        parts.extensions.insert(caller.clone());
        Ok(caller)
    }
}

/// The authenticated owner of a request.
pub struct Owner(pub String);

impl<S> FromRequestParts<S> for Owner
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = BayError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Caller::from_request_parts(parts, state).await.map(|c| Owner(c.owner))
    }
}

/// A caller with the `admin` scope (403 `forbidden` otherwise).
pub struct Admin(pub Caller);

impl<S> FromRequestParts<S> for Admin
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = BayError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if !caller.admin {
            return Err(BayError::forbidden("This endpoint requires an API key with the admin scope").with("required_scope", "admin"));
        }
        Ok(Admin(caller))
    }
}

/// Where the contract has a JSON object, nothing else will do: serde's
/// derives would read a struct from an array (`[]` as `{}`).
fn object_expected() -> BayError {
    BayError::request_validation(&["body"], "Input should be a valid dictionary or object to extract fields from", "model_attributes_type")
}

fn first_byte(bytes: &[u8]) -> Option<u8> {
    bytes.iter().copied().find(|b| !b.is_ascii_whitespace())
}

/// Parses a JSON object body; an empty body counts as `{}`. Anything but an
/// object is 422; schema errors are 422 `validation_error` with the failing
/// field in `details.errors[].loc`.
pub fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, BayError> {
    match first_byte(bytes) {
        None => deserialize(b"{}"),
        Some(b'{') => deserialize(bytes),
        Some(_) if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_err() => deserialize(bytes),
        Some(_) => Err(object_expected()),
    }
}

/// As [`parse_body`], for the optional bodies of deletes: `null` is `None`.
pub fn parse_optional_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<Option<T>, BayError> {
    match first_byte(bytes) {
        None => Ok(None),
        Some(b'n') if serde_json::from_slice::<()>(bytes).is_ok() => Ok(None),
        Some(_) => parse_body(bytes).map(Some),
    }
}

fn deserialize<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, BayError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let mut loc = vec![Value::from("body")];
        let inner_is_syntax = e.inner().is_syntax() || e.inner().is_eof();
        if !inner_is_syntax {
            loc.extend(path_loc(e.path()));
        }
        let inner = e.into_inner();
        let msg = inner.to_string();
        if inner_is_syntax {
            return BayError::request_validation_at(loc, msg, "json_invalid");
        }
        // FastAPI names a missing field in `loc`; serde only in its message.
        if let Some(field) = missing_field(&msg) {
            loc.push(Value::from(field));
            return BayError::request_validation_at(loc, "Field required", "missing");
        }
        BayError::request_validation_at(loc, msg, "value_error")
    })
}

fn path_loc(path: &serde_path_to_error::Path) -> Vec<Value> {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|s| match s {
            Segment::Map { key } => Some(Value::from(key.as_str())),
            Segment::Enum { variant } => Some(Value::from(variant.as_str())),
            Segment::Seq { index } => Some(Value::from(*index)),
            Segment::Unknown => None,
        })
        .collect()
}

/// `missing field `code` at line 1 column 2` → `code`.
fn missing_field(msg: &str) -> Option<&str> {
    let rest = msg.strip_prefix("missing field `")?;
    Some(&rest[..rest.find('`')?])
}

/// Parses a query string into `T`; a value that does not fit its type is
/// 422 naming the parameter (`["query", "limit"]`).
pub fn parse_query<T: DeserializeOwned>(query: Option<&str>) -> Result<T, BayError> {
    let q = query.unwrap_or("");
    let de = serde_urlencoded::Deserializer::new(form_urlencoded_parse(q));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let mut loc = vec![Value::from("query")];
        loc.extend(path_loc(e.path()));
        let msg = e.into_inner().to_string();
        if let Some(field) = missing_field(&msg) {
            loc.push(Value::from(field));
            return BayError::request_validation_at(loc, "Field required", "missing");
        }
        BayError::request_validation_at(loc, msg, "value_error")
    })
}

fn form_urlencoded_parse(q: &str) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(q.as_bytes())
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
        #[serde(default)]
        commands: Vec<String>,
    }

    #[test]
    fn schema_errors_name_the_field() {
        let err = parse_body::<Body>(br#"{"code": 1}"#).unwrap_err();
        assert_eq!(err.status().as_u16(), 422);
        assert_eq!(err.details["errors"][0]["loc"], serde_json::json!(["body", "code"]));
        let err = parse_body::<Body>(br#"{"code": "x", "timeout": "y"}"#).unwrap_err();
        assert_eq!(err.details["errors"][0]["loc"], serde_json::json!(["body", "timeout"]));
        let err = parse_body::<Body>(br#"{"code": "x", "timeout": 9223372036854775808}"#).unwrap_err();
        assert_eq!(err.details["errors"][0]["loc"], serde_json::json!(["body", "timeout"]));
        let err = parse_body::<Body>(br#"{"code": "x", "commands": ["a", 2]}"#).unwrap_err();
        assert_eq!(err.details["errors"][0]["loc"], serde_json::json!(["body", "commands", 1]));
        let err = parse_body::<Body>(br#"{"timeout": 1}"#).unwrap_err();
        assert_eq!(err.details["errors"][0]["loc"], serde_json::json!(["body", "code"]));
        assert_eq!(err.details["errors"][0]["type"], "missing");
    }

    #[test]
    fn malformed_json_is_422_and_empty_body_is_an_empty_object() {
        let err = parse_body::<Body>(b"{not json").unwrap_err();
        assert_eq!(err.status().as_u16(), 422);
        assert_eq!(err.details["errors"][0]["type"], "json_invalid");
        let err = parse_body::<Body>(b"").unwrap_err();
        assert_eq!(err.details["errors"][0]["loc"], serde_json::json!(["body", "code"]));
        let err = parse_body::<Body>(b"[not json").unwrap_err();
        assert_eq!(err.details["errors"][0]["type"], "json_invalid");
    }

    #[test]
    fn only_objects_are_bodies() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Defaults {
            #[serde(default)]
            ttl: Option<i64>,
        }
        assert!(parse_body::<Defaults>(b" {} ").is_ok());
        for bad in [&b"[]"[..], b"[1]", b"null", b"1", b"\"x\"", b"true"] {
            let err = parse_body::<Defaults>(bad).unwrap_err();
            assert_eq!(err.status().as_u16(), 422, "{}", String::from_utf8_lossy(bad));
            assert_eq!(err.details["errors"][0]["type"], "model_attributes_type");
            assert_eq!(err.details["errors"][0]["loc"], serde_json::json!(["body"]));
        }
        assert!(parse_optional_body::<Defaults>(b"null").unwrap().is_none());
        assert!(parse_optional_body::<Defaults>(b"").unwrap().is_none());
        assert!(parse_optional_body::<Defaults>(b"{}").unwrap().is_some());
        assert!(parse_optional_body::<Defaults>(b"[]").is_err());
    }

    #[test]
    fn query_errors_name_the_parameter() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Q {
            limit: Option<i64>,
            cursor: Option<String>,
        }
        let q: Q = parse_query(Some("limit=5&cursor=abc")).unwrap();
        assert_eq!(q.limit, Some(5));
        for bad in ["limit=99999999999999999999", "limit=x", "limit=1.5"] {
            let err = parse_query::<Q>(Some(bad)).unwrap_err();
            assert_eq!(err.status().as_u16(), 422, "{bad}");
            assert_eq!(err.details["errors"][0]["loc"], serde_json::json!(["query", "limit"]), "{bad}");
        }
        assert!(parse_query::<Q>(None).is_ok());
    }

    #[test]
    fn ranges() {
        assert!(check_range(0, 1, 300, &["body", "timeout"]).is_err());
        assert!(check_range(301, 1, 300, &["body", "timeout"]).is_err());
        assert!(check_range(300, 1, 300, &["body", "timeout"]).is_ok());
    }
}
