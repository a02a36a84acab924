//! The skill lifecycle: payloads, candidates, evaluations, releases.

use axum::http::Method;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, Extensions};
use rmcp::{tool, tool_router};
use serde_json::{Value, json};

use crate::mcp::args::{
    self, CreateSkillCandidate, CreateSkillPayload, DeleteSkillCandidate, DeleteSkillRelease, EvaluateSkillCandidate, ListSkillCandidates,
    ListSkillReleases, PromoteSkillCandidate, SkillPayloadRef, SkillReleaseRef,
};
use crate::mcp::rest::{CallError, seg, with_query};
use crate::mcp::server::BayMcp;
use crate::mcp::text::{clip, joined, py, result, s};

fn deleted_text(what: &str, id: &str, d: &Value) -> String {
    format!(
        "{what} deleted: {id}\ndeleted_at: {}\ndeleted_by: {}\ndelete_reason: {}",
        py(d, "deleted_at"),
        py(d, "deleted_by"),
        py(d, "delete_reason")
    )
}

fn reason_body(reason: Option<String>) -> Value {
    match reason {
        Some(r) => json!({"reason": r}),
        None => json!({}),
    }
}

#[tool_router(router = skill_tools, vis = "pub(crate)")]
impl BayMcp {
    #[tool(description = "Store a JSON object or array as a skill payload (e.g. the commands of a browser skill) and return its payload_ref.")]
    async fn create_skill_payload(&self, Parameters(a): Parameters<CreateSkillPayload>, ext: Extensions) -> CallToolResult {
        let rest = self.rest(&ext);
        result(
            async {
                if !(a.payload.is_object() || a.payload.is_array()) {
                    return Err(CallError::validation("field 'payload' must be a JSON object or array"));
                }
                let kind = a.kind.filter(|k| !k.is_empty()).unwrap_or_else(|| "generic".into());
                let r = rest.post("/v1/skills/payloads", json!({"payload": a.payload, "kind": kind})).await?;
                Ok(format!("Created skill payload {}\nkind: {}", s(&r, "payload_ref"), s(&r, "kind")))
            }
            .await,
        )
    }

    #[tool(description = "Read a skill payload by its payload_ref.")]
    async fn get_skill_payload(&self, Parameters(a): Parameters<SkillPayloadRef>, ext: Extensions) -> CallToolResult {
        let rest = self.rest(&ext);
        result(
            async {
                let r = args::required(&a.payload_ref, "payload_ref")?;
                let p = rest.get(&format!("/v1/skills/payloads/{}", seg(r))).await?;
                let payload = p.get("payload").map(Value::to_string).unwrap_or_else(|| "null".into());
                Ok(format!("payload_ref: {}\nkind: {}\npayload:\n{}", s(&p, "payload_ref"), s(&p, "kind"), clip(&payload)))
            }
            .await,
        )
    }

    #[tool(description = "Propose a reusable skill from executions that worked (their execution IDs as evidence), \
with an optional summary, usage notes and pre/post conditions.")]
    async fn create_skill_candidate(&self, Parameters(a): Parameters<CreateSkillCandidate>, ext: Extensions) -> CallToolResult {
        let rest = self.rest(&ext);
        result(
            async {
                let key = args::required(&a.skill_key, "skill_key")?;
                let ids = args::string_list(&a.source_execution_ids, "source_execution_ids")?;
                let body = json!({
                    "skill_key": key, "source_execution_ids": ids, "scenario_key": a.scenario_key, "payload_ref": a.payload_ref,
                    "summary": a.summary, "usage_notes": a.usage_notes, "preconditions": a.preconditions, "postconditions": a.postconditions
                });
                let c = rest.post("/v1/skills/candidates", body).await?;
                Ok(format!(
                    "Created skill candidate {}\nskill_key: {}\nstatus: {}\nsource_execution_ids: {}",
                    s(&c, "id"),
                    s(&c, "skill_key"),
                    s(&c, "status"),
                    joined(&c, "source_execution_ids")
                ))
            }
            .await,
        )
    }

    #[tool(description = "Record an evaluation of a skill candidate (passed or not, with an optional score, benchmark and report).")]
    async fn evaluate_skill_candidate(&self, Parameters(a): Parameters<EvaluateSkillCandidate>, ext: Extensions) -> CallToolResult {
        let rest = self.rest(&ext);
        result(
            async {
                let id = args::required(&a.candidate_id, "candidate_id")?;
                let body = json!({"passed": a.passed, "score": a.score, "benchmark_id": a.benchmark_id, "report": a.report});
                let e = rest.post(&format!("/v1/skills/candidates/{}/evaluate", seg(id)), body).await?;
                Ok(format!(
                    "Evaluation recorded: {}\ncandidate_id: {}\npassed: {}\nscore: {}",
                    s(&e, "id"),
                    s(&e, "candidate_id"),
                    py(&e, "passed"),
                    py(&e, "score")
                ))
            }
            .await,
        )
    }

    #[tool(description = "Release a skill candidate that passed its evaluation (stage canary or stable), optionally as the \
upgrade of an earlier release with a reason and change summary.")]
    async fn promote_skill_candidate(&self, Parameters(a): Parameters<PromoteSkillCandidate>, ext: Extensions) -> CallToolResult {
        let rest = self.rest(&ext);
        result(
            async {
                let id = args::required(&a.candidate_id, "candidate_id")?;
                let stage = args::stage(Some(a.stage.as_deref().unwrap_or("canary")))?;
                let body = json!({
                    "stage": stage, "upgrade_of_release_id": a.upgrade_of_release_id, "upgrade_reason": a.upgrade_reason,
                    "change_summary": a.change_summary
                });
                let r = rest.post(&format!("/v1/skills/candidates/{}/promote", seg(id)), body).await?;
                Ok(format!(
                    "Candidate promoted: {id}\nrelease_id: {}\nskill_key: {}\nversion: {}\nstage: {}\nactive: {}\nupgrade_of_release_id: {}\nupgrade_reason: {}",
                    s(&r, "id"),
                    s(&r, "skill_key"),
                    py(&r, "version"),
                    s(&r, "stage"),
                    py(&r, "is_active"),
                    py(&r, "upgrade_of_release_id"),
                    py(&r, "upgrade_reason")
                ))
            }
            .await,
        )
    }

    #[tool(description = "List skill candidates, newest first, optionally by status or skill key.")]
    async fn list_skill_candidates(&self, Parameters(a): Parameters<ListSkillCandidates>, ext: Extensions) -> CallToolResult {
        let rest = self.rest(&ext);
        result(
            async {
                let limit = args::int(a.limit, 50, "limit", Some(1), Some(500))?;
                let offset = args::int(a.offset, 0, "offset", Some(0), None)?;
                let uri = with_query(
                    "/v1/skills/candidates",
                    &[("status", a.status), ("skill_key", a.skill_key), ("limit", Some(limit.to_string())), ("offset", Some(offset.to_string()))],
                );
                let page = rest.get(&uri).await?;
                let items = page.get("items").and_then(Value::as_array).cloned().unwrap_or_default();
                if items.is_empty() {
                    return Ok("No skill candidates found.".into());
                }
                let mut lines = vec![format!("Total: {}", py(&page, "total"))];
                for c in &items {
                    lines.push(format!("- {} | {} | status={} | pass={}", s(c, "id"), s(c, "skill_key"), s(c, "status"), py(c, "latest_pass")));
                }
                Ok(lines.join("\n"))
            }
            .await,
        )
    }

    #[tool(description = "List skill releases, newest first, optionally by skill key, stage or only the active ones.")]
    async fn list_skill_releases(&self, Parameters(a): Parameters<ListSkillReleases>, ext: Extensions) -> CallToolResult {
        let rest = self.rest(&ext);
        result(
            async {
                let stage = args::stage(a.stage.as_deref())?;
                let limit = args::int(a.limit, 50, "limit", Some(1), Some(500))?;
                let offset = args::int(a.offset, 0, "offset", Some(0), None)?;
                let uri = with_query(
                    "/v1/skills/releases",
                    &[
                        ("skill_key", a.skill_key.clone()),
                        ("active_only", a.active_only.filter(|b| *b).map(|_| "true".to_owned())),
                        ("stage", stage.map(str::to_owned)),
                        ("limit", Some(limit.to_string())),
                        ("offset", Some(offset.to_string())),
                    ],
                );
                let page = rest.get(&uri).await?;
                let items = page.get("items").and_then(Value::as_array).cloned().unwrap_or_default();
                if items.is_empty() {
                    return Ok("No skill releases found.".into());
                }
                let mut lines = vec![format!("Total: {}", py(&page, "total"))];
                for r in &items {
                    lines.push(format!(
                        "- {} | {} v{} | stage={} | active={}",
                        s(r, "id"),
                        s(r, "skill_key"),
                        py(r, "version"),
                        s(r, "stage"),
                        py(r, "is_active")
                    ));
                }
                Ok(lines.join("\n"))
            }
            .await,
        )
    }

    #[tool(description = "Soft-delete a skill release (it is deactivated), with an optional reason for the audit trail.")]
    async fn delete_skill_release(&self, Parameters(a): Parameters<DeleteSkillRelease>, ext: Extensions) -> CallToolResult {
        let rest = self.rest(&ext);
        result(
            async {
                let id = args::required(&a.release_id, "release_id")?;
                let d = rest.json(Method::DELETE, &format!("/v1/skills/releases/{}", seg(id)), Some(reason_body(a.reason.clone()))).await?;
                Ok(deleted_text("Skill release", id, &d))
            }
            .await,
        )
    }

    #[tool(description = "Soft-delete a skill candidate, with an optional reason. Candidates behind an active release cannot be deleted.")]
    async fn delete_skill_candidate(&self, Parameters(a): Parameters<DeleteSkillCandidate>, ext: Extensions) -> CallToolResult {
        let rest = self.rest(&ext);
        result(
            async {
                let id = args::required(&a.candidate_id, "candidate_id")?;
                let d = rest.json(Method::DELETE, &format!("/v1/skills/candidates/{}", seg(id)), Some(reason_body(a.reason.clone()))).await?;
                Ok(deleted_text("Skill candidate", id, &d))
            }
            .await,
        )
    }

    #[tool(description = "Roll an active skill release back to the previous release (a new release pointing at the earlier candidate).")]
    async fn rollback_skill_release(&self, Parameters(a): Parameters<SkillReleaseRef>, ext: Extensions) -> CallToolResult {
        let rest = self.rest(&ext);
        result(
            async {
                let id = args::required(&a.release_id, "release_id")?;
                let r = rest.json(Method::POST, &format!("/v1/skills/releases/{}/rollback", seg(id)), None).await?;
                Ok(format!(
                    "Rollback completed.\nnew_release_id: {}\nskill_key: {}\nversion: {}\nrollback_of: {}",
                    s(&r, "id"),
                    s(&r, "skill_key"),
                    py(&r, "version"),
                    py(&r, "rollback_of")
                ))
            }
            .await,
        )
    }
}
