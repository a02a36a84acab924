//! Validation of the relative paths agents send (Shipyard Neo's
//! `validate_relative_path`, Shipyard Neo's contract (docs/compatibility.md)).
//!
//! This is the host's half of a two-layer defence: it rejects what can never
//! be valid (absolute paths, escapes above the workspace) before any container
//! is touched; the runtime then resolves symlinks inside the container and
//! refuses anything that lands outside `/workspace`.

use crate::error::{BayError, ErrorCode};

fn invalid(field: &str, reason: &str, message: String) -> BayError {
    BayError::new(ErrorCode::InvalidPath, message).with("field", field).with("reason", reason)
}

/// Validates and normalises a workspace-relative path. `field` names the
/// request field (`path` or `cwd`) in the error.
///
/// Rules, in order: empty → `empty_path`; NUL byte → `null_byte`; leading `/`
/// → `absolute_path`; `..` popping past the root → `path_traversal`. `.` and
/// repeated or trailing slashes collapse; an empty result is `"."`.
pub fn validate_relative_path(path: &str, field: &str) -> Result<String, BayError> {
    if path.is_empty() {
        return Err(invalid(field, "empty_path", format!("{field} cannot be empty")));
    }
    if path.contains('\0') {
        return Err(invalid(field, "null_byte", format!("{field} contains invalid characters")));
    }
    if path.starts_with('/') {
        return Err(invalid(field, "absolute_path", format!("{field} must be a relative path")));
    }
    let mut parts: Vec<&str> = Vec::new();
    for component in path.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(invalid(field, "path_traversal", format!("{field} escapes workspace boundary")));
                }
            }
            other => parts.push(other),
        }
    }
    Ok(if parts.is_empty() { ".".to_owned() } else { parts.join("/") })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(p: &str) -> String {
        let err = validate_relative_path(p, "path").unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidPath);
        assert_eq!(err.details["field"], "path");
        err.details["reason"].as_str().unwrap().to_owned()
    }

    #[test]
    fn accepts_and_normalises() {
        let ok = |p: &str| validate_relative_path(p, "path").unwrap();
        assert_eq!(ok("subdir/../test.txt"), "test.txt");
        assert_eq!(ok("./a/b/../c.txt"), "a/c.txt");
        assert_eq!(ok(".gitignore"), ".gitignore");
        assert_eq!(ok("a//b/"), "a/b");
        assert_eq!(ok("."), ".");
        assert_eq!(ok("a/.."), ".");
        assert_eq!(ok("~/x"), "~/x");
        assert_eq!(ok("a\\..\\..\\b"), "a\\..\\..\\b");
        assert_eq!(ok("..."), "...");
    }

    #[test]
    fn rejects_with_the_reference_reasons() {
        assert_eq!(reason(""), "empty_path");
        assert_eq!(reason("a\0b"), "null_byte");
        assert_eq!(reason("/etc/passwd"), "absolute_path");
        assert_eq!(reason("//x"), "absolute_path");
        assert_eq!(reason("../x"), "path_traversal");
        assert_eq!(reason("a/../../x"), "path_traversal");
        assert_eq!(reason("../"), "path_traversal");
        assert_eq!(reason(".."), "path_traversal");
    }

    #[test]
    fn messages_name_the_field() {
        let err = validate_relative_path("/x", "cwd").unwrap_err();
        assert_eq!(err.message, "cwd must be a relative path");
        assert_eq!(err.details["field"], "cwd");
        assert_eq!(validate_relative_path("", "path").unwrap_err().message, "path cannot be empty");
        assert_eq!(validate_relative_path("../a", "path").unwrap_err().message, "path escapes workspace boundary");
    }
}
