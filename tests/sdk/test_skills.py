"""client.skills: payloads, candidates, evaluations, releases, rollback,
health and deletes (reference §1.9)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
from shipyard_neo import (
    BayClient,
    ConflictError,
    NotFoundError,
    SkillCandidateInfo,
    SkillCandidateList,
    SkillCandidateStatus,
    SkillEvaluationInfo,
    SkillPayloadCreateInfo,
    SkillPayloadInfo,
    SkillReleaseHealth,
    SkillReleaseInfo,
    SkillReleaseList,
    SkillReleaseStage,
    ValidationError,
)

from conftest import SandboxFactory, uid

BLOB_REF = r"^blob:blob-[0-9a-f]{12}$"
CANDIDATE_ID = r"^sc-[0-9a-f]{12}$"
EVALUATION_ID = r"^se-[0-9a-f]{12}$"
RELEASE_ID = r"^sr-[0-9a-f]{12}$"


@dataclass
class Execs:
    ids: list[str]


@pytest_asyncio.fixture(scope="module")
async def execs(module_sandboxes: SandboxFactory) -> AsyncIterator[Execs]:
    """Real executions to cite as a candidate's sources."""
    sb = await module_sandboxes()
    a = await sb.python.exec("import json\nprint(json.dumps({'ok': True}))")
    b = await sb.shell.exec("echo step-two")
    yield Execs([a.execution_id, b.execution_id])


# -------------------------------------------------------------------- payloads


async def test_payload_round_trip(client: BayClient) -> None:
    obj = {"commands": ["open about:blank", "get title"], "nested": {"n": 1, "f": 1.5, "none": None}}
    created = await client.skills.create_payload(payload=obj, kind="browser_recipe")
    assert isinstance(created, SkillPayloadCreateInfo)
    assert re.match(BLOB_REF, created.payload_ref), created.payload_ref
    assert created.kind == "browser_recipe"
    got = await client.skills.get_payload(created.payload_ref)
    assert isinstance(got, SkillPayloadInfo)
    assert (got.payload_ref, got.kind, got.payload) == (created.payload_ref, "browser_recipe", obj)


async def test_payload_list_and_json_string(client: BayClient) -> None:
    lst = await client.skills.create_payload(payload=[1, "two", {"three": 3}])
    assert lst.kind == "generic"
    assert (await client.skills.get_payload(lst.payload_ref)).payload == [1, "two", {"three": 3}]
    js = await client.skills.create_payload(payload='{"from": "json string"}')
    assert (await client.skills.get_payload(js.payload_ref)).payload == {"from": "json string"}


async def test_payload_errors(client: BayClient) -> None:
    with pytest.raises(NotFoundError):
        await client.skills.get_payload("blob:blob-000000000000")
    with pytest.raises(ValidationError):
        await client.skills.get_payload("file:whatever")


# ------------------------------------------------------------------ candidates


async def test_candidate_create_get_list(client: BayClient, execs: Execs) -> None:
    key = uid("skill")
    payload = await client.skills.create_payload(payload={"steps": ["a", "b"]})
    c = await client.skills.create_candidate(
        skill_key=key,
        source_execution_ids=execs.ids,
        scenario_key="scenario-1",
        payload_ref=payload.payload_ref,
        summary="does a then b",
        usage_notes="call it twice",
        preconditions={"needs": "network"},
        postconditions={"produces": ["x"]},
    )
    assert isinstance(c, SkillCandidateInfo)
    assert re.match(CANDIDATE_ID, c.id), c.id
    assert c.skill_key == key
    assert c.source_execution_ids == execs.ids
    assert (c.scenario_key, c.payload_ref, c.summary, c.usage_notes) == (
        "scenario-1",
        payload.payload_ref,
        "does a then b",
        "call it twice",
    )
    assert c.preconditions == {"needs": "network"}
    assert c.postconditions == {"produces": ["x"]}
    assert c.status == SkillCandidateStatus.DRAFT
    assert c.skill_type == "code"
    assert c.latest_score is None and c.latest_pass is None and c.promotion_release_id is None
    assert c.created_by == "default"
    assert c.is_deleted is False

    got = await client.skills.get_candidate(c.id)
    assert got.id == c.id and got.skill_key == key and got.preconditions == c.preconditions

    minimal = await client.skills.create_candidate(skill_key=key, source_execution_ids=execs.ids[:1])
    listing = await client.skills.list_candidates(skill_key=key)
    assert isinstance(listing, SkillCandidateList)
    assert [x.id for x in listing.items] == [minimal.id, c.id]  # newest first
    assert listing.total == 2
    page = await client.skills.list_candidates(skill_key=key, limit=1, offset=1)
    assert [x.id for x in page.items] == [c.id] and page.total == 2
    drafts = await client.skills.list_candidates(skill_key=key, status=SkillCandidateStatus.DRAFT)
    assert drafts.total == 2
    none = await client.skills.list_candidates(skill_key=key, status="rejected")
    assert none.total == 0 and none.items == []


async def test_candidate_validation(client: BayClient, execs: Execs) -> None:
    with pytest.raises(ValidationError):
        await client.skills.create_candidate(skill_key=uid("skill"), source_execution_ids=["exec-000000000000"])
    with pytest.raises(ValidationError):
        await client.skills.create_candidate(skill_key="   ", source_execution_ids=execs.ids)
    with pytest.raises(ValidationError):
        await client.skills.list_candidates(status="not-a-status")
    with pytest.raises(NotFoundError):
        await client.skills.get_candidate("sc-000000000000")


# --------------------------------------------------- evaluate, promote, rollback


async def test_release_lifecycle(client: BayClient, execs: Execs) -> None:
    skills = client.skills
    key = uid("skill")
    first = await skills.create_candidate(skill_key=key, source_execution_ids=execs.ids)

    # No passing evaluation yet: promotion is blocked.
    with pytest.raises(ConflictError):
        await skills.promote_candidate(first.id)

    ev = await skills.evaluate_candidate(first.id, passed=True, score=0.93, benchmark_id="bench-1", report='{"replay_success": 1.0}')
    assert isinstance(ev, SkillEvaluationInfo)
    assert re.match(EVALUATION_ID, ev.id), ev.id
    assert (ev.candidate_id, ev.passed, ev.score, ev.benchmark_id, ev.report) == (
        first.id,
        True,
        0.93,
        "bench-1",
        '{"replay_success": 1.0}',
    )
    assert ev.evaluated_by == "default"
    evaluated = await skills.get_candidate(first.id)
    assert evaluated.status == SkillCandidateStatus.EVALUATING
    assert (evaluated.latest_score, evaluated.latest_pass) == (0.93, True)
    assert evaluated.last_evaluated_at is not None

    with pytest.raises(ValidationError):
        await skills.promote_candidate(first.id, stage="production")

    r1 = await skills.promote_candidate(first.id, change_summary="first cut")
    assert isinstance(r1, SkillReleaseInfo)
    assert re.match(RELEASE_ID, r1.id), r1.id
    assert (r1.skill_key, r1.candidate_id, r1.version, r1.stage, r1.is_active, r1.release_mode) == (
        key,
        first.id,
        1,
        SkillReleaseStage.CANARY,
        True,
        "manual",
    )
    assert r1.change_summary == "first cut"
    assert r1.promoted_by == "default"
    promoted = await skills.get_candidate(first.id)
    assert promoted.status == SkillCandidateStatus.PROMOTED
    assert promoted.promotion_release_id == r1.id

    # A rejected candidate cannot be promoted.
    rejected = await skills.create_candidate(skill_key=key, source_execution_ids=execs.ids)
    await skills.evaluate_candidate(rejected.id, passed=False, score=0.1)
    assert (await skills.get_candidate(rejected.id)).status == SkillCandidateStatus.REJECTED
    with pytest.raises(ConflictError):
        await skills.promote_candidate(rejected.id)

    second = await skills.create_candidate(skill_key=key, source_execution_ids=execs.ids[1:])
    await skills.evaluate_candidate(second.id, passed=True)
    r2 = await skills.promote_candidate(
        second.id,
        stage=SkillReleaseStage.STABLE,
        upgrade_of_release_id=r1.id,
        upgrade_reason="better",
        change_summary="second cut",
    )
    assert (r2.version, r2.stage, r2.is_active) == (2, SkillReleaseStage.STABLE, True)
    assert (r2.upgrade_of_release_id, r2.upgrade_reason) == (r1.id, "better")

    releases = await skills.list_releases(skill_key=key)
    assert isinstance(releases, SkillReleaseList)
    assert [r.id for r in releases.items] == [r2.id, r1.id] and releases.total == 2  # newest first
    assert {r.id: r.is_active for r in releases.items} == {r2.id: True, r1.id: False}
    active = await skills.list_releases(skill_key=key, active_only=True)
    assert [r.id for r in active.items] == [r2.id]
    canary = await skills.list_releases(skill_key=key, stage=SkillReleaseStage.CANARY)
    assert [r.id for r in canary.items] == [r1.id]
    page = await skills.list_releases(skill_key=key, limit=1, offset=1)
    assert [r.id for r in page.items] == [r1.id] and page.total == 2
    with pytest.raises(ValidationError):
        await skills.list_releases(stage="beta")

    health = await skills.get_release_health(r2.id)
    assert isinstance(health, SkillReleaseHealth)
    assert (health.release_id, health.skill_key, health.stage) == (r2.id, key, "stable")
    assert health.samples == 0
    assert health.window_end_at > health.window_start_at
    assert set(health.thresholds) == {"success_drop", "error_rate_multiplier"}
    assert isinstance(health.healthy, bool) and isinstance(health.should_rollback, bool)

    # Rollback of r2 re-activates r1's candidate as a new version.
    r3 = await skills.rollback_release(r2.id)
    assert (r3.version, r3.candidate_id, r3.stage, r3.rollback_of, r3.is_active) == (
        3,
        first.id,
        SkillReleaseStage.CANARY,
        r2.id,
        True,
    )
    assert (await skills.get_candidate(second.id)).status == SkillCandidateStatus.ROLLED_BACK
    active = await skills.list_releases(skill_key=key, active_only=True)
    assert [r.id for r in active.items] == [r3.id]

    # The first release has nothing before it.
    with pytest.raises(ConflictError):
        await skills.rollback_release(r1.id)

    # A candidate behind an active release cannot be deleted.
    with pytest.raises(ConflictError):
        await skills.delete_candidate(first.id)

    deleted = await skills.delete_release(r3.id, reason="bad rollout")
    assert deleted["id"] == r3.id
    assert deleted["delete_reason"] == "bad rollout"
    assert deleted["deleted_by"] == "default"
    assert deleted["deleted_at"]
    remaining = await skills.list_releases(skill_key=key)
    assert r3.id not in {r.id for r in remaining.items}
    assert (await skills.list_releases(skill_key=key, active_only=True)).total == 0

    gone = await skills.delete_candidate(first.id)
    assert gone["id"] == first.id and gone["delete_reason"] is None
    with pytest.raises(NotFoundError):
        await skills.get_candidate(first.id)
    assert first.id not in {c.id for c in (await skills.list_candidates(skill_key=key)).items}

    await skills.delete_release(r1.id)
    with pytest.raises(NotFoundError):
        await skills.get_release_health("sr-000000000000")
    with pytest.raises(NotFoundError):
        await skills.rollback_release("sr-000000000000")
    with pytest.raises(NotFoundError):
        await skills.evaluate_candidate("sc-000000000000", passed=True)
