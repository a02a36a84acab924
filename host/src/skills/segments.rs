//! What the browser-learning scheduler learns from one execution's trace:
//! its steps, normalised, cut into replayable segments, and the keys and
//! offline score of each segment (Shipyard Neo's `BrowserLearningProcessor`).

use super::Json;

/// Commands that only look at the page; they end a segment.
pub const READ_ONLY_PREFIXES: [&str; 10] = ["snapshot", "get ", "is ", "wait", "cookies", "storage", "network requests", "tab", "frame", "dialog"];

/// The only step kind a segment is made of.
pub const INDIVIDUAL_ACTION: &str = "individual_action";

/// A trace step as the scheduler sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub cmd: String,
    pub exit_code: i64,
    pub kind: String,
}

impl Step {
    /// `{"cmd", "exit_code", "kind"}`, as stored in a `browser_segment` blob.
    pub fn to_json(&self) -> Json {
        Json::Object(vec![
            ("cmd".into(), Json::String(self.cmd.clone())),
            ("exit_code".into(), Json::Number(self.exit_code.into())),
            ("kind".into(), Json::String(self.kind.clone())),
        ])
    }
}

/// Python's `str(value)` for the scalars a trace may hold.
fn text(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        Json::Null => "None".into(),
        Json::Bool(b) => if *b { "True" } else { "False" }.into(),
        other => other.to_text(),
    }
}

/// Python's `int(value)`; anything else (missing, null, not a number) is 1, a failure.
fn exit_code(value: Option<&Json>) -> i64 {
    match value {
        Some(Json::Number(n)) => n.as_i64().or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f.trunc() as i64)).unwrap_or(1),
        Some(Json::Bool(b)) => *b as i64,
        Some(Json::String(s)) => s.trim().parse::<i64>().unwrap_or(1),
        _ => 1,
    }
}

/// The steps of a trace payload: its `steps` array, a single step object,
/// or an array of steps. With none, the execution itself is one step
/// (`code`, exit 0 when it succeeded). Steps without a command are dropped.
pub fn normalize_steps(trace: Option<&Json>, code: &str, success: bool) -> Vec<Step> {
    let objects = |items: &[Json]| items.iter().filter(|s| s.is_object()).cloned().collect::<Vec<_>>();
    let mut raw = match trace {
        Some(t @ Json::Object(_)) => match t.get("steps") {
            Some(Json::Array(steps)) => objects(steps),
            _ if t.get("cmd").is_some() => vec![t.clone()],
            _ => vec![],
        },
        Some(Json::Array(items)) => objects(items),
        _ => vec![],
    };
    if raw.is_empty() {
        raw.push(Json::Object(vec![
            ("cmd".into(), Json::String(code.into())),
            ("exit_code".into(), Json::Number((!success as i64).into())),
            ("kind".into(), Json::String(INDIVIDUAL_ACTION.into())),
        ]));
    }
    raw.iter()
        .filter_map(|step| {
            let cmd = step.get("cmd").map(text).unwrap_or_default().trim().to_owned();
            if cmd.is_empty() {
                return None;
            }
            let kind = step.get("kind").map(text).unwrap_or_else(|| INDIVIDUAL_ACTION.into());
            Some(Step { cmd, exit_code: exit_code(step.get("exit_code")), kind })
        })
        .collect()
}

pub fn is_read_only(cmd: &str) -> bool {
    let cmd = cmd.trim().to_lowercase();
    READ_ONLY_PREFIXES.iter().any(|p| cmd.starts_with(p))
}

/// Runs of at least two consecutive successful, non-read-only
/// `individual_action` steps.
pub fn segments(steps: &[Step]) -> Vec<Vec<Step>> {
    let mut out = Vec::new();
    let mut current: Vec<Step> = Vec::new();
    for step in steps {
        let actionable = step.exit_code == 0 && !is_read_only(&step.cmd) && step.kind == INDIVIDUAL_ACTION && !step.cmd.is_empty();
        if actionable {
            current.push(step.clone());
            continue;
        }
        if current.len() >= 2 {
            out.push(std::mem::take(&mut current));
        }
        current.clear();
    }
    if current.len() >= 2 {
        out.push(current);
    }
    out
}

/// The skill a trace teaches: the first `skill:<key>` tag, else `browser-<sandbox_id>`.
pub fn skill_key(tags: Option<&str>, sandbox_id: &str) -> String {
    tags.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .find_map(|t| t.strip_prefix("skill:").filter(|k| !k.is_empty()))
        .map(str::to_owned)
        .unwrap_or_else(|| format!("browser-{sandbox_id}"))
}

/// The description, lower-cased, each run of characters outside
/// `[a-z0-9._-]` replaced by `-`, trimmed of `-`, at most 64 characters.
pub fn scenario_key(description: Option<&str>) -> Option<String> {
    let lowered = description?.trim().to_lowercase();
    let mut slug = String::with_capacity(lowered.len());
    let mut in_run = false;
    for c in lowered.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
            slug.push(c);
            in_run = false;
        } else if !in_run {
            slug.push('-');
            in_run = true;
        }
    }
    let slug = slug.trim_matches('-');
    (!slug.is_empty()).then(|| slug.chars().take(64).collect())
}

/// The offline evaluation of a segment (benchmark `browser-replay-v1`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    pub score: f64,
    pub replay_success: f64,
    pub samples: i64,
    pub error_rate: f64,
    pub p95_duration: i64,
}

fn round4(v: f64) -> f64 {
    (v * 10_000.0).round() / 10_000.0
}

/// `score = min(0.99, 0.75 + 0.08 × steps)`, replay success 1.0, `steps × 10` samples.
pub fn score(steps: usize) -> Score {
    let replay_success = if steps > 0 { 1.0 } else { 0.0 };
    Score {
        score: round4(f64::min(0.99, 0.75 + 0.08 * steps as f64)),
        replay_success,
        samples: steps as i64 * 10,
        error_rate: round4(1.0 - replay_success),
        p95_duration: 0,
    }
}

/// Python's `json.dumps` of a float (`1.0`, `0.85`).
fn float(v: f64) -> String {
    serde_json::to_string(&v).unwrap_or_else(|_| "null".into())
}

impl Score {
    /// The evaluation report, as Shipyard Neo writes it (`json.dumps`
    /// spacing): the policy, then the metrics. Release health reads
    /// `replay_success`, `error_rate` and `samples` back as a baseline.
    pub fn report(&self, score_threshold: f64, replay_success_threshold: f64, min_samples: u32) -> String {
        format!(
            r#"{{"policy": {{"score_threshold": {}, "replay_success_threshold": {}, "min_samples": {min_samples}}}, "score": {}, "replay_success": {}, "samples": {}, "error_rate": {}, "p95_duration": {}}}"#,
            float(score_threshold),
            float(replay_success_threshold),
            float(self.score),
            float(self.replay_success),
            self.samples,
            float(self.error_rate),
            self.p95_duration,
        )
    }

    /// Passing needs the score, the replay success and the samples all at
    /// their thresholds.
    pub fn passes(&self, score_threshold: f64, replay_success_threshold: f64, min_samples: u32) -> bool {
        self.score >= score_threshold && self.replay_success >= replay_success_threshold && self.samples >= i64::from(min_samples)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(cmd: &str, exit_code: i64) -> Step {
        Step { cmd: cmd.into(), exit_code, kind: INDIVIDUAL_ACTION.into() }
    }

    fn cmds(segments: &[Vec<Step>]) -> Vec<Vec<&str>> {
        segments.iter().map(|s| s.iter().map(|st| st.cmd.as_str()).collect()).collect()
    }

    #[test]
    fn read_only_prefixes() {
        for cmd in [
            "snapshot -i",
            "get text @e1",
            "  Get title",
            "is visible @e1",
            "wait --load networkidle",
            "cookies",
            "storage local",
            "network requests",
            "tab 2",
            "frame main",
            "dialog accept",
        ] {
            assert!(is_read_only(cmd), "{cmd}");
        }
        for cmd in ["click @e1", "fill @e2 hello", "open https://example.com", "getter", "press Enter", "type @e2 x"] {
            assert!(!is_read_only(cmd), "{cmd}");
        }
    }

    #[test]
    fn segments_break_on_read_only_failed_and_other_kinds_and_need_two_steps() {
        let mut other = step("click @e9", 0);
        other.kind = "composite".into();
        let steps = vec![
            step("open https://example.com", 0),
            step("click @e1", 0),
            step("snapshot -i", 0),
            step("fill @e2 hello", 1),
            step("type @e2 world", 0),
            step("get title", 0),
            step("click @e3", 0),
            step("press Enter", 0),
            step("click @e4", 0),
            other,
            step("click @e5", 0),
            step("click @e6", 0),
        ];
        assert_eq!(
            cmds(&segments(&steps)),
            vec![vec!["open https://example.com", "click @e1"], vec!["click @e3", "press Enter", "click @e4"], vec!["click @e5", "click @e6"]]
        );
        assert!(segments(&[step("open x", 0)]).is_empty(), "a single step is no segment");
        assert!(segments(&[step("open x", 0), step("click @e1", 2)]).is_empty());
        assert!(segments(&[]).is_empty());
    }

    #[test]
    fn steps_are_normalised_from_every_trace_shape() {
        let batch = Json::parse(r#"{"kind": "browser_batch_trace", "steps": [{"kind": "individual_action", "cmd": " open x ", "stdout": "", "exit_code": 0, "step_index": 0}, "junk", {"cmd": "click @e1", "exit_code": "0"}, {"cmd": "", "exit_code": 0}, {"cmd": "fill @e2 a"}, {"cmd": "press Enter", "exit_code": 1.0}]}"#).unwrap();
        assert_eq!(
            normalize_steps(Some(&batch), "ignored", true),
            vec![step("open x", 0), step("click @e1", 0), step("fill @e2 a", 1), step("press Enter", 1)]
        );
        let single = Json::parse(r#"{"cmd": "open x", "exit_code": 0, "kind": "other"}"#).unwrap();
        assert_eq!(normalize_steps(Some(&single), "c", true), vec![Step { cmd: "open x".into(), exit_code: 0, kind: "other".into() }]);
        let list = Json::parse(r#"[{"cmd": "open x", "exit_code": 0}, 3]"#).unwrap();
        assert_eq!(normalize_steps(Some(&list), "c", true), vec![step("open x", 0)]);
        // No steps: the execution's own code is the one step.
        assert_eq!(normalize_steps(None, "open about:blank", false), vec![step("open about:blank", 1)]);
        assert_eq!(normalize_steps(Some(&Json::parse(r#"{"steps": []}"#).unwrap()), "open y", true), vec![step("open y", 0)]);
        assert_eq!(
            Step { cmd: "a".into(), exit_code: 0, kind: INDIVIDUAL_ACTION.into() }.to_json().to_text(),
            r#"{"cmd":"a","exit_code":0,"kind":"individual_action"}"#
        );
    }

    #[test]
    fn keys_come_from_tags_and_description() {
        assert_eq!(skill_key(Some("foo,skill:browser-login,skill:other"), "sandbox-1"), "browser-login");
        assert_eq!(skill_key(Some("foo, skill:,bar"), "sandbox-1"), "browser-sandbox-1");
        assert_eq!(skill_key(None, "sandbox-k"), "browser-sandbox-k");
        assert_eq!(scenario_key(Some("  Login to GitHub & star a repo!  ")).as_deref(), Some("login-to-github-star-a-repo"));
        assert_eq!(scenario_key(Some("a - b_c.d")).as_deref(), Some("a---b_c.d"));
        assert_eq!(scenario_key(Some(" !!! ")), None);
        assert_eq!(scenario_key(None), None);
        assert_eq!(scenario_key(Some(&"x".repeat(100))).unwrap().len(), 64);
    }

    #[test]
    fn scores_reports_and_the_pass_rule() {
        let s = score(3);
        assert_eq!((s.score, s.replay_success, s.samples, s.error_rate, s.p95_duration), (0.99, 1.0, 30, 0.0, 0));
        assert_eq!(score(2).score, 0.91);
        assert_eq!(score(10).score, 0.99);
        assert!(s.passes(0.85, 0.95, 30));
        assert!(!score(2).passes(0.85, 0.95, 30), "20 samples are fewer than min_samples");
        assert!(!s.passes(0.995, 0.95, 30));
        assert_eq!(
            s.report(0.85, 0.95, 30),
            r#"{"policy": {"score_threshold": 0.85, "replay_success_threshold": 0.95, "min_samples": 30}, "score": 0.99, "replay_success": 1.0, "samples": 30, "error_rate": 0.0, "p95_duration": 0}"#
        );
        assert!(Json::parse(&s.report(1.0, 1.0, 0)).unwrap().is_object());
    }
}
