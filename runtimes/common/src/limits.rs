//! The runtime limits of Ship and Gull, in one place (Bay's docs cite this
//! table).
//!
//! | what | limit | beyond it |
//! | --- | --- | --- |
//! | Python code of one `/ipython/exec` | 4 MiB ([`MAX_PYTHON_CODE`]) | 413 |
//! | Python text output of one execution | 8 MiB ([`MAX_PYTHON_TEXT`]) | cut, `[output truncated]` appended |
//! | Python images (base64 PNG) of one execution | 16 MiB in all ([`MAX_PYTHON_IMAGES`]) | further images dropped, `[output truncated]` appended |
//! | shell command of one `/shell/exec` | 1 MiB ([`MAX_SHELL_COMMAND`]) | 413 |
//! | shell stdout, and stderr, of one command | 8 MiB each ([`MAX_CAPTURE`]) | cut, `[output truncated]` appended |
//! | shell stdout, and stderr, of one `/shell/exec/stream` | 8 MiB each ([`MAX_CAPTURE`]) | one `truncated` event, the rest dropped |
//! | output kept per background process (`/processes`) | `SHIP_SCROLLBACK_BYTES`, default 1 MiB (+ the newest read, ≤ 16 KiB) | oldest events dropped; readers get a `gap` event |
//! | exited background processes kept | the last 64 | older ones forgotten (404) |
//! | agent-browser stdout, and stderr, of one command (Gull) | 8 MiB each ([`MAX_CAPTURE`]) | cut, `[output truncated]` appended |
//! | file read as text (`read_file`, `edit_file`) | 64 MiB ([`MAX_TEXT_FILE`]) | 413 (use `/fs/download`) |
//! | JSON request body (`write_file` content …) | 256 MiB ([`MAX_JSON_BODY`]) | 413 |
//! | upload / download | no limit of their own (streamed) | — |
//! | workspace size through Ship's API, with `BAY_CARGO_LIMIT_BYTES` set | that many bytes (apparent size) | 413 (see `runtimes/ship/src/quota.rs`) |
//!
//! Shell commands longer than what Linux allows in one `execve` argument
//! (128 KiB) are handed to bash through a pipe instead of `-c` (see
//! `runtimes/ship/src/shell.rs`). Ship's live exec (streamed commands,
//! background processes, the terminal) is described in
//! `runtimes/ship/src/stream.rs`.

/// Largest Python cell accepted.
pub const MAX_PYTHON_CODE: usize = 4 * 1024 * 1024;
/// Cap on the text collected from one execution (a `while True: print()`
/// must not exhaust the server's memory).
pub const MAX_PYTHON_TEXT: usize = 8 * 1024 * 1024;
/// Cap on the base64 image data collected from one execution.
pub const MAX_PYTHON_IMAGES: usize = 16 * 1024 * 1024;
/// Largest shell command accepted.
pub const MAX_SHELL_COMMAND: usize = 1024 * 1024;
/// Cap per captured stream of a shell command or agent-browser run.
pub const MAX_CAPTURE: usize = 8 * 1024 * 1024;
/// Appended to output that was cut at one of the caps.
pub const TRUNCATED_MARKER: &str = "\n[output truncated]";
/// Largest file `read_file`/`edit_file` load as text; bigger files are for
/// `/fs/download` (a JSON string of that size helps no agent).
pub const MAX_TEXT_FILE: u64 = 64 * 1024 * 1024;
/// JSON bodies (write_file content) may be large; uploads have no limit.
pub const MAX_JSON_BODY: usize = 256 * 1024 * 1024;
