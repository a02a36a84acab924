//! An incremental reader for JSON request bodies whose one string field may be
//! huge (`PUT …/filesystem/files`: `{"path": "...", "content": "..."}`).
//!
//! The body is fed chunk by chunk as it arrives; the streamed field's decoded
//! bytes go to a sink as they are decoded, small string fields are collected
//! (bounded), and other keys' values are checked and discarded. Nothing is
//! held whole, whatever the body's size. It accepts what serde_json accepts
//! for such an object (escapes, surrogate pairs, any key order, unknown keys,
//! whitespace) and refuses the rest with the error serde_json would give: raw
//! control characters, lone surrogates, invalid UTF-8, duplicate or missing
//! fields, trailing data.

use crate::error::BayError;

/// Where a field's string goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    /// Collected, at most this many bytes (413 beyond).
    Small(usize),
    /// Decoded bytes go to the sink as they come.
    Streamed,
}

/// Receives the streamed field's bytes.
pub(crate) trait Sink {
    fn write(&mut self, bytes: &[u8]) -> Result<(), BayError>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    KeyOrEnd,
    KeyStart,
    Key,
    Colon,
    Value,
    Str,
    Skip,
    CommaOrEnd,
    Done,
}

/// Decoding state inside a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Esc {
    None,
    Backslash,
    Unicode { digits: u8, value: u16 },
}

/// Where the string being decoded goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Key,
    Field(usize),
    Discard,
}

pub(crate) struct ObjectReader<'f> {
    fields: &'f [(&'static str, Field)],
    values: Vec<Option<Vec<u8>>>,
    seen: Vec<bool>,
    state: State,
    esc: Esc,
    high: Option<u16>,
    target: Target,
    key: Vec<u8>,
    /// Incomplete UTF-8 sequence at the end of the last raw run.
    utf8_tail: Vec<u8>,
    /// For a skipped value: nesting depth, whether inside a string, the
    /// scalar token so far (checked when it ends).
    skip_depth: u32,
    skip_in_string: bool,
    skip_escape: bool,
    scalar: Vec<u8>,
}

fn invalid(msg: impl Into<String>) -> BayError {
    BayError::request_validation(&["body"], msg, "json_invalid")
}

const MAX_KEY: usize = 1024;
const MAX_SKIPPED: usize = 64 << 10;

impl<'f> ObjectReader<'f> {
    pub(crate) fn new(fields: &'f [(&'static str, Field)]) -> ObjectReader<'f> {
        ObjectReader {
            fields,
            values: vec![None; fields.len()],
            seen: vec![false; fields.len()],
            state: State::Start,
            esc: Esc::None,
            high: None,
            target: Target::Discard,
            key: Vec::new(),
            utf8_tail: Vec::new(),
            skip_depth: 0,
            skip_in_string: false,
            skip_escape: false,
            scalar: Vec::new(),
        }
    }

    /// Feeds the next chunk of the body.
    pub(crate) fn feed(&mut self, chunk: &[u8], sink: &mut dyn Sink) -> Result<(), BayError> {
        let mut i = 0;
        while i < chunk.len() {
            let b = chunk[i];
            match self.state {
                State::Str => {
                    // Pass a run of plain bytes through at once.
                    if self.esc == Esc::None && b != b'"' && b != b'\\' {
                        let run = chunk[i..].iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20).unwrap_or(chunk.len() - i);
                        if run == 0 {
                            return Err(invalid("control character in a string"));
                        }
                        if self.high.is_some() {
                            return Err(invalid("lone leading surrogate in hex escape"));
                        }
                        self.raw(&chunk[i..i + run], sink)?;
                        i += run;
                        continue;
                    }
                    self.string_byte(b, sink)?;
                }
                State::Key => self.string_byte(b, sink)?,
                State::Skip => self.skip_byte(b)?,
                _ => self.structural(b)?,
            }
            i += 1;
        }
        Ok(())
    }

    /// The body has ended: checks it was one complete object with every
    /// field present; returns the small fields' values (streamed: `None`).
    pub(crate) fn finish(mut self) -> Result<Vec<Option<String>>, BayError> {
        if self.state == State::Skip && self.skip_depth == 0 && !self.skip_in_string {
            self.end_scalar()?;
        }
        if self.state != State::Done {
            return Err(invalid("EOF while parsing an object"));
        }
        let mut out = Vec::with_capacity(self.fields.len());
        for (i, (name, _)) in self.fields.iter().enumerate() {
            if !self.seen[i] {
                return Err(BayError::request_validation(&["body", name], "Field required", "missing"));
            }
            out.push(self.values[i].take().map(|v| String::from_utf8(v).expect("validated UTF-8")));
        }
        Ok(out)
    }

    fn structural(&mut self, b: u8) -> Result<(), BayError> {
        if b.is_ascii_whitespace() {
            return Ok(());
        }
        match (self.state, b) {
            (State::Start, b'{') => self.state = State::KeyOrEnd,
            (State::Start, _) => {
                return Err(BayError::request_validation(&["body"], "Input should be a valid dictionary or object", "model_attributes_type"));
            }
            (State::KeyOrEnd, b'}') | (State::CommaOrEnd, b'}') => self.state = State::Done,
            (State::KeyOrEnd, b'"') | (State::KeyStart, b'"') => {
                self.key.clear();
                self.target = Target::Key;
                self.state = State::Key;
            }
            (State::Colon, b':') => self.state = State::Value,
            (State::Value, _) => self.value_start(b)?,
            (State::CommaOrEnd, b',') => self.state = State::KeyStart,
            (State::Done, _) => return Err(invalid("trailing characters")),
            _ => return Err(invalid(format!("unexpected {:?}", b as char))),
        }
        Ok(())
    }

    fn value_start(&mut self, b: u8) -> Result<(), BayError> {
        let field = self.fields.iter().position(|(n, _)| n.as_bytes() == self.key.as_slice());
        if let Some(i) = field {
            if self.seen[i] {
                return Err(invalid(format!("duplicate field `{}`", self.fields[i].0)));
            }
            self.seen[i] = true;
            if b != b'"' {
                return Err(BayError::request_validation(&["body", self.fields[i].0], "Input should be a valid string", "string_type"));
            }
            if let Field::Small(_) = self.fields[i].1 {
                self.values[i] = Some(Vec::new());
            }
            self.target = Target::Field(i);
            self.state = State::Str;
            return Ok(());
        }
        // An unknown key: its value is checked and discarded.
        self.target = Target::Discard;
        if b == b'"' {
            self.state = State::Str;
            return Ok(());
        }
        self.state = State::Skip;
        self.skip_depth = 0;
        self.skip_in_string = false;
        self.skip_escape = false;
        self.scalar.clear();
        self.skip_byte(b)
    }

    /// A byte of an unknown key's non-string value: collected (bounded)
    /// and checked by serde_json when the value ends.
    fn skip_byte(&mut self, b: u8) -> Result<(), BayError> {
        let at_top = self.skip_depth == 0 && !self.skip_in_string;
        if at_top && (b == b',' || b == b'}' || b.is_ascii_whitespace()) {
            // The end of a scalar.
            self.end_scalar()?;
            self.state = State::CommaOrEnd;
            return self.structural(b);
        }
        if self.scalar.len() >= MAX_SKIPPED {
            return Err(BayError::new(
                crate::error::ErrorCode::PayloadTooLarge,
                format!("a value of an unknown field is longer than {MAX_SKIPPED} bytes"),
            ));
        }
        self.scalar.push(b);
        if self.skip_in_string {
            if self.skip_escape {
                self.skip_escape = false;
            } else if b == b'\\' {
                self.skip_escape = true;
            } else if b == b'"' {
                self.skip_in_string = false;
            }
            return Ok(());
        }
        match b {
            b'"' => self.skip_in_string = true,
            b'{' | b'[' => self.skip_depth += 1,
            b'}' | b']' => {
                self.skip_depth = self.skip_depth.checked_sub(1).ok_or_else(|| invalid(format!("unexpected {:?}", b as char)))?;
                if self.skip_depth == 0 {
                    self.end_scalar()?;
                    self.state = State::CommaOrEnd;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Checks a skipped value (a scalar, or a whole array/object) with serde_json.
    fn end_scalar(&mut self) -> Result<(), BayError> {
        if self.scalar.is_empty() {
            return Ok(());
        }
        let ok = serde_json::from_slice::<serde::de::IgnoredAny>(&self.scalar).is_ok();
        self.scalar.clear();
        if ok { Ok(()) } else { Err(invalid("expected value")) }
    }

    fn string_byte(&mut self, b: u8, sink: &mut dyn Sink) -> Result<(), BayError> {
        match self.esc {
            Esc::None => match b {
                b'"' => {
                    if self.high.is_some() {
                        return Err(invalid("lone leading surrogate in hex escape"));
                    }
                    if !self.utf8_tail.is_empty() {
                        return Err(invalid("invalid UTF-8 in a string"));
                    }
                    self.end_string()?;
                }
                b'\\' => self.esc = Esc::Backslash,
                c if c < 0x20 => return Err(invalid("control character in a string")),
                _ => {
                    if self.high.is_some() {
                        return Err(invalid("lone leading surrogate in hex escape"));
                    }
                    self.raw(&[b], sink)?;
                }
            },
            Esc::Backslash => {
                self.esc = Esc::None;
                let c = match b {
                    b'"' => b'"',
                    b'\\' => b'\\',
                    b'/' => b'/',
                    b'b' => 0x08,
                    b'f' => 0x0c,
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'u' => {
                        self.esc = Esc::Unicode { digits: 0, value: 0 };
                        return Ok(());
                    }
                    _ => return Err(invalid("invalid escape")),
                };
                if self.high.is_some() {
                    return Err(invalid("lone leading surrogate in hex escape"));
                }
                self.emit(&[c], sink)?;
            }
            Esc::Unicode { digits, value } => {
                let d = (b as char).to_digit(16).ok_or_else(|| invalid("invalid \\u escape"))? as u16;
                let value = (value << 4) | d;
                if digits + 1 < 4 {
                    self.esc = Esc::Unicode { digits: digits + 1, value };
                    return Ok(());
                }
                self.esc = Esc::None;
                self.code_unit(value, sink)?;
            }
        }
        Ok(())
    }

    fn code_unit(&mut self, unit: u16, sink: &mut dyn Sink) -> Result<(), BayError> {
        let ch = match (self.high.take(), unit) {
            (None, 0xD800..=0xDBFF) => {
                self.high = Some(unit);
                return Ok(());
            }
            (None, 0xDC00..=0xDFFF) => {
                return Err(invalid("lone trailing surrogate in hex escape"));
            }
            (None, u) => char::from_u32(u32::from(u)).expect("not a surrogate"),
            (Some(h), 0xDC00..=0xDFFF) => char::from_u32(0x10000 + ((u32::from(h) - 0xD800) << 10) + (u32::from(unit) - 0xDC00)).expect("valid pair"),
            (Some(_), _) => return Err(invalid("lone leading surrogate in hex escape")),
        };
        let mut buf = [0u8; 4];
        self.emit(ch.encode_utf8(&mut buf).as_bytes(), sink)
    }

    /// Raw (unescaped) bytes: checked to be UTF-8 across chunk boundaries.
    fn raw(&mut self, bytes: &[u8], sink: &mut dyn Sink) -> Result<(), BayError> {
        let joined;
        let data: &[u8] = if self.utf8_tail.is_empty() {
            bytes
        } else {
            joined = [std::mem::take(&mut self.utf8_tail).as_slice(), bytes].concat();
            &joined
        };
        let valid = match std::str::from_utf8(data) {
            Ok(_) => data.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => return Err(invalid("invalid UTF-8 in a string")),
        };
        let (good, tail) = data.split_at(valid);
        self.utf8_tail = tail.to_vec();
        self.emit(good, sink)
    }

    /// Decoded bytes of the current string.
    fn emit(&mut self, bytes: &[u8], sink: &mut dyn Sink) -> Result<(), BayError> {
        match self.target {
            Target::Key => {
                if self.key.len() + bytes.len() > MAX_KEY {
                    return Err(invalid("object key too long"));
                }
                self.key.extend_from_slice(bytes);
            }
            Target::Discard => {}
            Target::Field(i) => match self.fields[i].1 {
                Field::Small(max) => {
                    let v = self.values[i].as_mut().expect("small field");
                    if v.len() + bytes.len() > max {
                        return Err(BayError::new(
                            crate::error::ErrorCode::PayloadTooLarge,
                            format!("{} is longer than {max} bytes", self.fields[i].0),
                        )
                        .with("field", self.fields[i].0)
                        .with("limit_bytes", max as u64));
                    }
                    v.extend_from_slice(bytes);
                }
                Field::Streamed => sink.write(bytes)?,
            },
        }
        Ok(())
    }

    fn end_string(&mut self) -> Result<(), BayError> {
        self.state = match self.target {
            Target::Key => State::Colon,
            _ => State::CommaOrEnd,
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    struct Collect(Vec<u8>);
    impl Sink for Collect {
        fn write(&mut self, bytes: &[u8]) -> Result<(), BayError> {
            self.0.extend_from_slice(bytes);
            Ok(())
        }
    }

    const FIELDS: &[(&str, Field)] = &[("path", Field::Small(4096)), ("content", Field::Streamed)];

    /// Parses `body` fed in chunks of `chunk` bytes: (path, content).
    fn parse(body: &[u8], chunk: usize) -> Result<(String, Vec<u8>), BayError> {
        let mut r = ObjectReader::new(FIELDS);
        let mut sink = Collect(Vec::new());
        for c in body.chunks(chunk.max(1)) {
            r.feed(c, &mut sink)?;
        }
        let v = r.finish()?;
        Ok((v[0].clone().unwrap(), sink.0))
    }

    #[test]
    fn reads_fields_in_any_order_with_unknown_keys() {
        let body = br#" { "extra": [1, {"a": "}"}], "content": "a\"b\\n\u00e9\ud83d\ude00", "n": -1.5e3, "path": "x/y.txt", "t": true } "#;
        for chunk in [1, 2, 3, 7, 1000] {
            let (path, content) = parse(body, chunk).unwrap();
            assert_eq!(path, "x/y.txt");
            assert_eq!(String::from_utf8(content).unwrap(), "a\"b\\né😀");
        }
    }

    #[test]
    fn refuses_what_serde_json_refuses() {
        let cases: &[&[u8]] = &[
            b"[]",
            b"\"x\"",
            b"{\"path\": \"a\"}",
            b"{\"path\": \"a\", \"content\": 1}",
            b"{\"path\": \"a\", \"content\": \"x\", \"path\": \"b\"}",
            b"{\"path\": \"a\", \"content\": \"\\ud800\"}",
            b"{\"path\": \"a\", \"content\": \"\\udc00\"}",
            b"{\"path\": \"a\", \"content\": \"\x01\"}",
            b"{\"path\": \"a\", \"content\": \"\xff\"}",
            b"{\"path\": \"a\", \"content\": \"x\"} x",
            b"{\"path\": \"a\", \"content\": \"x\"",
            b"{\"path\": \"a\", \"content\": \"x\", \"n\": tru}",
            b"{\"path\": \"a\" \"content\": \"x\"}",
        ];
        for body in cases {
            assert!(parse(body, 1).is_err(), "{}", String::from_utf8_lossy(body));
            assert!(serde_json::from_slice::<Ref>(body).is_err(), "serde accepts {}", String::from_utf8_lossy(body));
        }
    }

    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Ref {
        path: String,
        content: String,
    }

    #[test]
    fn a_long_small_field_is_413() {
        let body = format!("{{\"path\": \"{}\", \"content\": \"\"}}", "a".repeat(5000));
        assert_eq!(parse(body.as_bytes(), 64).unwrap_err().status().as_u16(), 413);
    }

    proptest! {
        #[test]
        fn agrees_with_serde_json(path in ".{0,40}", content in any::<String>(), extra in proptest::option::of(any::<i64>()), chunk in 1usize..64, swap in any::<bool>()) {
            let mut obj = serde_json::Map::new();
            let entries = [("path", serde_json::json!(path)), ("content", serde_json::json!(content))];
            let order: Vec<_> = if swap { entries.iter().rev().collect() } else { entries.iter().collect() };
            for (k, v) in order {
                obj.insert((*k).into(), v.clone());
            }
            if let Some(x) = extra {
                obj.insert("x".into(), serde_json::json!({ "n": x, "s": [path.clone()] }));
            }
            let body = serde_json::to_vec(&obj).unwrap();
            let (p, c) = parse(&body, chunk).unwrap();
            prop_assert_eq!(p, path);
            prop_assert_eq!(String::from_utf8(c).unwrap(), content);
        }

        #[test]
        fn never_panics_on_garbage(body in proptest::collection::vec(any::<u8>(), 0..200), chunk in 1usize..16) {
            let ours = parse(&body, chunk).is_ok();
            if ours {
                prop_assert!(serde_json::from_slice::<Ref>(&body).is_ok());
            }
        }
    }
}
