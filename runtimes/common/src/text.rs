//! Text helpers: splitting a command line like Python's `shlex.split` (what
//! Shipyard does for Gull commands and for Ship's `shell: false`), removing
//! ANSI escape sequences from output, and decoding UTF-8 that arrives in
//! chunks (Ship's live output, `runtimes/ship/src/stream.rs`).

/// Splits `s` into words exactly like Python's `shlex.split(s)` (POSIX mode,
/// no comments): whitespace separates words; single quotes keep everything
/// literally; inside double quotes a backslash escapes only `"` and `\`;
/// outside quotes a backslash escapes any character; `''` is an empty word.
/// There is no shell: `|`, `>`, `$VAR` and globs are ordinary characters.
pub fn split_command(s: &str) -> Result<Vec<String>, String> {
    let is_space = |c: char| matches!(c, ' ' | '\t' | '\r' | '\n');
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if is_space(c) => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("No closing quotation".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => cur.push(c),
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err("No closing quotation".into()),
                        },
                        Some(c) => cur.push(c),
                        None => return Err("No closing quotation".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => cur.push(c),
                    None => return Err("No escaped character".into()),
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// Removes ANSI/VT escape sequences: CSI (`ESC [ … final`, also the 8-bit
/// `U+009B`), OSC/DCS/SOS/PM/APC strings (ended by BEL or `ESC \`), and
/// two-character escapes. agent-browser prints colours unless `NO_COLOR` is
/// set; Gull sets it and strips anyway, so clients always get plain text
/// (Ship strips kernel tracebacks the same way).
pub fn strip_ansi(s: &str) -> String {
    if !s.contains(['\u{1b}', '\u{9b}']) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                Some('[') => skip_csi(&mut chars),
                Some(']' | 'P' | 'X' | '^' | '_') => skip_string(&mut chars),
                // Two-character escape (ESC c, ESC 7, ESC =, …), or a lone
                // ESC at the very end.
                Some(_) | None => {}
            },
            '\u{9b}' => skip_csi(&mut chars),
            c => out.push(c),
        }
    }
    out
}

/// Parameter and intermediate bytes, then one final byte in `@`..=`~`.
fn skip_csi(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    for c in chars.by_ref() {
        if ('\u{40}'..='\u{7e}').contains(&c) {
            return;
        }
        if !('\u{20}'..='\u{3f}').contains(&c) {
            // Malformed: stop at the first byte that cannot be part of it.
            return;
        }
    }
}

/// Control strings end with BEL or ST (`ESC \`).
fn skip_string(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while let Some(c) = chars.next() {
        match c {
            '\u{7}' | '\u{9c}' => return,
            '\u{1b}' => {
                if chars.peek() == Some(&'\\') {
                    chars.next();
                }
                return;
            }
            _ => {}
        }
    }
}

/// `30` → `"30"`, `29.5` → `"29.5"`, `12.3456` → `"12.3"` (for timeout messages).
pub fn format_secs(secs: f64) -> String {
    if secs.fract() == 0.0 {
        format!("{secs:.0}")
    } else {
        let s = format!("{secs:.1}");
        s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
    }
}

/// Decodes UTF-8 that arrives in arbitrary chunks (pipe or PTY reads): a
/// character split across two chunks comes out whole with the second one;
/// invalid bytes become U+FFFD, exactly as `String::from_utf8_lossy` would
/// decode the whole stream at once.
#[derive(Debug, Default)]
pub struct Utf8Stream {
    /// The start of a character whose remaining bytes have not arrived (at
    /// most 3 bytes).
    pending: Vec<u8>,
}

impl Utf8Stream {
    /// The text of `chunk` (with what was pending before it); an incomplete
    /// character at its end is kept for the next call.
    pub fn decode(&mut self, chunk: &[u8]) -> String {
        let joined;
        let mut rest: &[u8] = if self.pending.is_empty() {
            chunk
        } else {
            let mut j = std::mem::take(&mut self.pending);
            j.extend_from_slice(chunk);
            joined = j;
            &joined
        };
        let mut out = String::with_capacity(rest.len());
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    return out;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    // SAFETY: `valid_up_to` bytes were just validated.
                    out.push_str(unsafe { std::str::from_utf8_unchecked(valid) });
                    match e.error_len() {
                        Some(n) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            rest = &after[n..];
                        }
                        None => {
                            self.pending = after.to_vec();
                            return out;
                        }
                    }
                }
            }
        }
    }

    /// End of the stream: an incomplete character still pending is U+FFFD.
    pub fn finish(&mut self) -> String {
        if self.pending.is_empty() {
            String::new()
        } else {
            self.pending.clear();
            char::REPLACEMENT_CHARACTER.to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &str) -> Vec<String> {
        split_command(s).unwrap()
    }

    #[test]
    fn splits_like_python_shlex() {
        assert_eq!(split("open about:blank"), ["open", "about:blank"]);
        assert_eq!(split("  snapshot   -i \t"), ["snapshot", "-i"]);
        assert_eq!(split(r#"fill @e1 "hello world""#), ["fill", "@e1", "hello world"]);
        assert_eq!(split("fill @e1 'it is'"), ["fill", "@e1", "it is"]);
        assert_eq!(split(r#"eval "document.title = \"x\"""#), ["eval", r#"document.title = "x""#]);
        // Inside double quotes only \" and \\ are escapes (Python keeps the rest).
        assert_eq!(split(r#""a\$b\n""#), [r"a\$b\n"]);
        assert_eq!(split(r#""a\\b""#), [r"a\b"]);
        // Outside quotes a backslash escapes anything.
        assert_eq!(split(r"a\ b c\'d"), ["a b", "c'd"]);
        // Single quotes keep backslashes.
        assert_eq!(split(r"'a\b'"), [r"a\b"]);
        // Adjacent quoted parts join; empty quotes make an empty word.
        assert_eq!(split(r#"a"b"'c' '' x"#), ["abc", "", "x"]);
        // No shell: operators are plain words.
        assert_eq!(split("get title | cat > x $HOME *"), ["get", "title", "|", "cat", ">", "x", "$HOME", "*"]);
        // No comments either.
        assert_eq!(split("eval 1 # 2"), ["eval", "1", "#", "2"]);
        assert!(split("").is_empty());
        assert!(split(" \n ").is_empty());
        assert_eq!(split("a\nb"), ["a", "b"]);
    }

    #[test]
    fn split_errors() {
        assert_eq!(split_command("fill @e1 \"abc").unwrap_err(), "No closing quotation");
        assert_eq!(split_command("fill @e1 'abc").unwrap_err(), "No closing quotation");
        assert_eq!(split_command("fill @e1 \"abc\\").unwrap_err(), "No closing quotation");
        assert_eq!(split_command("abc\\").unwrap_err(), "No escaped character");
    }

    #[test]
    fn strips_ansi() {
        assert_eq!(strip_ansi("plain"), "plain");
        assert_eq!(strip_ansi("\x1b[32m✓\x1b[0m Done"), "✓ Done");
        assert_eq!(strip_ansi("\x1b[1;31mError:\x1b[22m x\x1b[m"), "Error: x");
        assert_eq!(strip_ansi("a\x1b[2Kb\x1b[10;20Hc"), "abc");
        // OSC 8 hyperlink, ended by ST and by BEL.
        assert_eq!(strip_ansi("\x1b]8;;http://x\x1b\\link\x1b]8;;\x07!"), "link!");
        // Two-character escapes, 8-bit CSI, a lone ESC at the end.
        assert_eq!(strip_ansi("\x1b7a\x1b8b\u{9b}1mc\x1b"), "abc");
        // Multi-byte text around escapes survives.
        assert_eq!(strip_ansi("标题\x1b[36m→\x1b[0m ok"), "标题→ ok");
        // Unterminated CSI swallows only what could belong to it.
        assert_eq!(strip_ansi("x\x1b[12"), "x");
    }

    #[test]
    fn utf8_stream_matches_lossy_decoding_at_every_split() {
        let samples: [&[u8]; 5] = ["aé€😀z".as_bytes(), b"ok\xffmid\xe2\x82end", b"\xf0\x9f\x98", b"\xed\xa0\x80x\xc3", "你好\n世界".as_bytes()];
        for bytes in samples {
            let whole = String::from_utf8_lossy(bytes);
            // Every way of cutting it in two and in three.
            for i in 0..=bytes.len() {
                for j in i..=bytes.len() {
                    let mut d = Utf8Stream::default();
                    let mut got = d.decode(&bytes[..i]);
                    got += &d.decode(&bytes[i..j]);
                    got += &d.decode(&bytes[j..]);
                    got += &d.finish();
                    assert_eq!(got, whole, "{bytes:?} cut at {i}, {j}");
                }
            }
            // One byte at a time: no character is ever broken.
            let mut d = Utf8Stream::default();
            let mut got = String::new();
            for b in bytes {
                got += &d.decode(std::slice::from_ref(b));
            }
            got += &d.finish();
            assert_eq!(got, whole);
        }
        let mut d = Utf8Stream::default();
        assert_eq!(d.decode(&[0xe4, 0xbd]), "");
        assert_eq!(d.decode(&[0xa0]), "你");
        assert_eq!(d.finish(), "");
    }

    #[test]
    fn seconds_format() {
        assert_eq!(format_secs(30.0), "30");
        assert_eq!(format_secs(29.5), "29.5");
        assert_eq!(format_secs(12.3456), "12.3");
        assert_eq!(format_secs(0.04), "0");
    }
}
