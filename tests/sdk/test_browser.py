"""sandbox.browser: exec, exec_batch, run_skill (reference §1.4 Browser).

They need a profile with the `browser` capability (a Gull runtime):
profiles/browser-python.yaml, which run.sh loads through `profiles_dir`.
They skip only if no such profile is configured.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from shipyard_neo import BayClient, BrowserBatchExecResult, BrowserExecResult, BrowserSkillRunResult, NotFoundError
from shipyard_neo.sandbox import Sandbox

from conftest import SandboxFactory, uid


@pytest_asyncio.fixture(scope="module")
async def browser_sandbox(client: BayClient, module_sandboxes: SandboxFactory) -> AsyncIterator[Sandbox]:
    profiles = (await client.list_profiles()).items
    browser = [p for p in profiles if "browser" in p.capabilities]
    if not browser:
        pytest.skip(
            "no profile with the `browser` capability; "
            f"profiles: {[p.id for p in profiles]}"
        )
    yield await module_sandboxes(profile=browser[0].id)


async def test_browser_exec(browser_sandbox: Sandbox) -> None:
    r = await browser_sandbox.browser.exec("open about:blank", description="blank page", tags="browser")
    assert isinstance(r, BrowserExecResult)
    assert r.success and r.exit_code == 0, r
    assert r.execution_id and r.trace_ref is None
    entry = await browser_sandbox.get_execution(r.execution_id)
    assert (entry.exec_type, entry.learn_enabled, entry.learn_status) == ("browser", False, "skipped")


async def test_browser_exec_trace(browser_sandbox: Sandbox) -> None:
    r = await browser_sandbox.browser.exec("get title", include_trace=True)
    assert r.trace_ref and r.trace_ref.startswith("blob:"), r


async def test_browser_exec_batch_stops_on_error(browser_sandbox: Sandbox) -> None:
    r = await browser_sandbox.browser.exec_batch(
        ["open about:blank", "nonexistent-subcommand", "get title"], stop_on_error=True
    )
    assert isinstance(r, BrowserBatchExecResult)
    assert (r.total_steps, r.completed_steps, len(r.results), r.success) == (3, 2, 2, False)
    assert r.results[-1].cmd == "nonexistent-subcommand" and r.results[-1].exit_code != 0
    entry = await browser_sandbox.get_execution(r.execution_id)
    assert entry.exec_type == "browser_batch"
    assert entry.code == "open about:blank\nnonexistent-subcommand\nget title"


async def test_browser_run_skill(client: BayClient, browser_sandbox: Sandbox) -> None:
    key = uid("browser-skill")
    with pytest.raises(NotFoundError):
        await browser_sandbox.browser.run_skill(key)
    source = await browser_sandbox.browser.exec("open about:blank")
    payload = await client.skills.create_payload(payload={"commands": ["open about:blank", "get title"]})
    cand = await client.skills.create_candidate(
        skill_key=key, source_execution_ids=[source.execution_id], payload_ref=payload.payload_ref
    )
    await client.skills.evaluate_candidate(cand.id, passed=True, score=1.0)
    release = await client.skills.promote_candidate(cand.id)
    r = await browser_sandbox.browser.run_skill(key, include_trace=True)
    assert isinstance(r, BrowserSkillRunResult)
    assert (r.skill_key, r.release_id, r.total_steps, r.completed_steps, r.success) == (key, release.id, 2, 2, True)
    entry = await browser_sandbox.get_execution(r.execution_id)
    assert f"skill:{key}" in (entry.tags or "") and f"release:{release.id}" in (entry.tags or "")
