//! Property tests of the request types: any JSON (or any bytes) given to a
//! body parser either parses — and then every accepted number is in range
//! and its arithmetic cannot overflow — or is a 4xx error whose 422 details
//! name a location under `body`. Nothing panics.

use proptest::prelude::*;
use serde_json::{Map, Value};

use super::{admin, browser, cargos, exec, sandboxes};
use crate::config::LimitsConfig;
use crate::error::{BayError, ErrorCode};
use crate::ids;

/// Field names the bodies know, so generated objects often hit them.
const KEYS: &[&str] = &[
    "ttl",
    "extend_by",
    "profile",
    "cargo_id",
    "timeout",
    "code",
    "command",
    "cwd",
    "cmd",
    "commands",
    "size_limit_mb",
    "include_code",
    "description",
    "tags",
    "learn",
    "include_trace",
    "stop_on_error",
    "owner",
    "scopes",
    "name",
];

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f).map(Value::Number)),
        prop::sample::select(vec![
            i64::MAX,
            i64::MIN,
            i64::MAX / 1_000_000,
            i64::MAX / 1_000_000 + 1,
            0,
            -1,
            1,
            300,
            301,
            600,
            65536,
            65537,
            ids::MAX_TTL_SECS,
            ids::MAX_TTL_SECS + 1,
        ])
        .prop_map(Value::from),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        number(),
        "[a-z /._-]{0,12}".prop_map(Value::from),
        prop::sample::select(vec!["admin", "user", "python-default", "..", "/etc", ""]).prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS.to_vec()).prop_map(str::to_owned), inner), 0..6)
                .prop_map(|fields| Value::Object(fields.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Objects made of known fields with arbitrary values (the likelier inputs).
fn body() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => prop::collection::vec((prop::sample::select(KEYS.to_vec()).prop_map(str::to_owned), json()), 0..6)
            .prop_map(|fields| Value::Object(fields.into_iter().collect::<Map<_, _>>())),
        1 => json(),
    ]
}

/// An error is a client error; a 422 names where, under `body`.
fn check_error(e: &BayError) {
    let status = e.status().as_u16();
    assert!((400..500).contains(&status), "{status}: {e:?}");
    if e.code == ErrorCode::RequestValidation {
        let loc = &e.details["errors"][0]["loc"];
        assert_eq!(loc[0], "body", "{e:?}");
    }
}

fn limits() -> LimitsConfig {
    // Small field limits so the generated strings can cross them.
    LimitsConfig { python_code_bytes: 8, shell_command_bytes: 8, browser_cmd_bytes: 8, browser_batch_bytes: 8, ..Default::default() }
}

fn bytes_of(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn sandbox_create(v in body()) {
        match sandboxes::parse_create(&bytes_of(&v)) {
            Ok(b) => {
                if let Some(ttl) = b.ttl {
                    prop_assert!(ttl <= ids::MAX_TTL_SECS);
                    // Any accepted ttl has an expiry (or none), never a wrap.
                    let now = ids::now_micros();
                    let e = crate::sandbox::expiry_for_ttl(now, Some(ttl)).unwrap();
                    prop_assert!(e.is_none_or(|t| t > now));
                }
            }
            Err(e) => check_error(&e),
        }
    }

    #[test]
    fn sandbox_extend(v in body()) {
        match sandboxes::parse_extend(&bytes_of(&v)) {
            Ok(b) => {
                prop_assert!(b.extend_by <= ids::MAX_TTL_SECS);
                let now = ids::now_micros();
                if b.extend_by > 0 {
                    prop_assert!(ids::checked_after(now, b.extend_by).is_some_and(|t| t > now));
                }
            }
            Err(e) => check_error(&e),
        }
    }

    #[test]
    fn cargo_create(v in body()) {
        match cargos::parse_create(&bytes_of(&v)) {
            Ok(b) => prop_assert!(b.size_limit_mb.is_none_or(|s| (1..=cargos::MAX_SIZE_LIMIT_MB).contains(&s))),
            Err(e) => check_error(&e),
        }
    }

    #[test]
    fn python_and_shell(v in body()) {
        let l = limits();
        match exec::parse_python(&bytes_of(&v), &l) {
            Ok(b) => {
                prop_assert!((1..=300).contains(&b.timeout));
                prop_assert!(b.code.len() as u64 <= l.python_code_bytes);
            }
            Err(e) => check_error(&e),
        }
        match exec::parse_shell(&bytes_of(&v), &l) {
            Ok(b) => {
                prop_assert!((1..=300).contains(&b.timeout));
                prop_assert!(b.command.len() as u64 <= l.shell_command_bytes);
            }
            Err(e) => check_error(&e),
        }
    }

    #[test]
    fn browser(v in body()) {
        let l = limits();
        match browser::parse_exec(&bytes_of(&v), &l) {
            Ok(b) => prop_assert!((1..=300).contains(&b.timeout) && b.cmd.len() as u64 <= l.browser_cmd_bytes),
            Err(e) => check_error(&e),
        }
        match browser::parse_batch(&bytes_of(&v), &l) {
            Ok(b) => {
                prop_assert!((1..=600).contains(&b.timeout) && !b.commands.is_empty());
                prop_assert!(b.commands.iter().map(String::len).sum::<usize>() as u64 <= l.browser_batch_bytes);
            }
            Err(e) => check_error(&e),
        }
        match browser::parse_skill_run(&bytes_of(&v)) {
            Ok(b) => prop_assert!((1..=600).contains(&b.timeout)),
            Err(e) => check_error(&e),
        }
    }

    #[test]
    fn admin_keys(v in body()) {
        match admin::parse_create_key(&bytes_of(&v)) {
            Ok(k) => prop_assert!(!k.scopes.is_empty() && !k.owner.is_empty()),
            Err(e) => check_error(&e),
        }
    }

    #[test]
    fn any_bytes(raw in prop::collection::vec(any::<u8>(), 0..64)) {
        let errors = [
            sandboxes::parse_create(&raw).err(),
            sandboxes::parse_extend(&raw).err(),
            cargos::parse_create(&raw).err(),
            exec::parse_python(&raw, &limits()).err(),
        ];
        for e in errors.iter().flatten() {
            check_error(e);
        }
    }

    #[test]
    fn non_objects_are_refused(v in json().prop_filter("not an object", |v| !v.is_object())) {
        let e = sandboxes::parse_create(&bytes_of(&v)).err().expect("a non-object body is refused");
        prop_assert_eq!(e.status().as_u16(), 422);
        prop_assert_eq!(&e.details["errors"][0]["loc"], &serde_json::json!(["body"]));
    }
}
