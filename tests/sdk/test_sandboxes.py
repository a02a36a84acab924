"""Sandbox lifecycle through the SDK: create/get/list, refresh, stop, keepalive,
delete, extend_ttl and idempotency keys (reference §1.3, §4.1)."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import httpx
import pydantic
import pytest
from shipyard_neo import (
    BayClient,
    ConflictError,
    NotFoundError,
    SandboxExpiredError,
    SandboxList,
    SandboxStatus,
    SandboxTTLInfiniteError,
    ValidationError,
)
from shipyard_neo.sandbox import Sandbox

from conftest import CARGO_ID, SANDBOX_ID, SandboxFactory, eventually, now, uid, utc

LIVE = {SandboxStatus.IDLE, SandboxStatus.STARTING, SandboxStatus.READY}


async def wait_ready(sb: Sandbox) -> None:
    async def ready() -> bool:
        await sb.refresh()
        return sb.status == SandboxStatus.READY

    await eventually(ready, timeout=60)


# ------------------------------------------------------------------ create/get


async def test_create_defaults(client: BayClient, new_sandbox: SandboxFactory) -> None:
    before = now()
    sb = await new_sandbox()
    after = now()
    assert re.match(SANDBOX_ID, sb.id), sb.id
    assert re.match(CARGO_ID, sb.cargo_id), sb.cargo_id
    assert sb.profile == "python-default"
    assert sb.status in LIVE
    profile = {p.id: p for p in (await client.list_profiles()).items}["python-default"]
    assert sb.capabilities == profile.capabilities
    assert before - timedelta(seconds=5) <= utc(sb.created_at) <= after + timedelta(seconds=5)
    assert sb.expires_at is None
    # `containers` is only filled by GET on a ready session.
    assert sb._info.containers is None


async def test_create_with_ttl(new_sandbox: SandboxFactory) -> None:
    sb = await new_sandbox(ttl=600)
    assert sb.expires_at is not None
    delta = (utc(sb.expires_at) - utc(sb.created_at)).total_seconds()
    assert 595 <= delta <= 605, delta
    # ttl 0 or negative: no expiry.
    for ttl in (0, -1):
        other = await new_sandbox(ttl=ttl)
        assert other.expires_at is None, (ttl, other._info)


async def test_get_sandbox_and_refresh(client: BayClient, sandbox: Sandbox) -> None:
    got = await client.get_sandbox(sandbox.id)
    assert got.id == sandbox.id
    assert got.profile == sandbox.profile
    assert got.cargo_id == sandbox.cargo_id
    assert got.capabilities == sandbox.capabilities
    assert utc(got.created_at) == utc(sandbox.created_at)
    assert got.status in LIVE
    # A sandbox starts its session by itself (warmup) or on the first exec.
    await sandbox.python.exec("1")
    await sandbox.refresh()
    assert sandbox.status == SandboxStatus.READY
    assert sandbox.idle_expires_at is not None
    containers = sandbox._info.containers
    assert containers, sandbox._info
    assert len(containers) == 1
    c = containers[0]
    assert c.runtime_type == "ship"
    assert c.status == "running"
    assert c.healthy is True
    assert c.version


async def test_create_invalid_profile(client: BayClient) -> None:
    with pytest.raises(ValidationError) as e:
        await client.create_sandbox(profile="no-such-profile")
    assert "no-such-profile" in e.value.message


# ------------------------------------------------------------------------ list


async def test_list_pagination(client: BayClient, module_sandboxes: SandboxFactory) -> None:
    mine = {(await module_sandboxes()).id for _ in range(3)}

    seen: list[str] = []
    cursor = None
    for _ in range(100):
        page = await client.list_sandboxes(limit=1, cursor=cursor)
        assert isinstance(page, SandboxList)
        assert len(page.items) <= 1
        for item in page.items:
            assert item.containers is None  # the list never loads containers
        seen += [i.id for i in page.items]
        if page.next_cursor is None:
            break
        assert page.items, "a page with a next_cursor must not be empty here"
        assert page.next_cursor == page.items[-1].id
        cursor = page.next_cursor
    else:
        pytest.fail("pagination did not end")

    assert mine <= set(seen), (mine, seen)
    assert seen == sorted(seen), "sandboxes are listed by id ascending"
    assert len(seen) == len(set(seen)), "no sandbox on two pages"

    # One page with everything: no next_cursor.
    full = await client.list_sandboxes(limit=200)
    assert [i.id for i in full.items] == seen
    assert full.next_cursor is None

    # A page of two: next_cursor is the last item, and the next page follows it.
    first = await client.list_sandboxes(limit=2)
    assert [i.id for i in first.items] == seen[:2]
    assert first.next_cursor == seen[1]
    rest = await client.list_sandboxes(limit=200, cursor=first.next_cursor)
    assert [i.id for i in rest.items] == seen[2:]


async def test_list_limit_bounds(client: BayClient) -> None:
    # FastAPI answers 422 outside 1..200; the SDK maps a bare 422 to BayError.
    from shipyard_neo import BayError

    for limit in (0, 201):
        with pytest.raises(BayError):
            await client.list_sandboxes(limit=limit)


async def test_list_status_filter(client: BayClient, new_sandbox: SandboxFactory) -> None:
    ready = await new_sandbox()
    await ready.python.exec("1")
    idle = await new_sandbox()
    await idle.python.exec("1")  # a session to stop: sessions start lazily (on the first call)
    await idle.stop()

    for status in (SandboxStatus.READY, "ready"):
        page = await client.list_sandboxes(status=status, limit=200)
        ids = {i.id for i in page.items}
        assert ready.id in ids and idle.id not in ids
        assert all(i.status == SandboxStatus.READY for i in page.items)

    page = await client.list_sandboxes(status=SandboxStatus.IDLE, limit=200)
    ids = {i.id for i in page.items}
    assert idle.id in ids and ready.id not in ids
    assert all(i.status == SandboxStatus.IDLE for i in page.items)

    # An unknown status is ignored (no filter).
    page = await client.list_sandboxes(status="bogus", limit=200)
    ids = {i.id for i in page.items}
    assert {ready.id, idle.id} <= ids


# ------------------------------------------------------- stop/keepalive/delete


async def test_stop_keeps_files_loses_state(new_sandbox: SandboxFactory) -> None:
    sb = await new_sandbox()
    await sb.python.exec("kept = 41")
    await sb.filesystem.write_file("stop-survivor.txt", "still here")
    await sb.stop()
    await sb.refresh()
    assert sb.status == SandboxStatus.IDLE
    assert sb.idle_expires_at is None
    await sb.stop()  # idempotent

    r = await sb.python.exec("print(kept + 1)")
    assert not r.success
    assert "NameError" in (r.error or ""), r
    assert await sb.filesystem.read_file("stop-survivor.txt") == "still here"
    await sb.refresh()
    assert sb.status == SandboxStatus.READY


async def test_keepalive(new_sandbox: SandboxFactory, client: BayClient) -> None:
    sb = await new_sandbox(ttl=3600)
    expires = utc(sb.expires_at)
    profile = {p.id: p for p in (await client.list_profiles()).items}["python-default"]
    before = now()
    await sb.keepalive()
    await sb.refresh()
    assert sb.idle_expires_at is not None
    target = before + timedelta(seconds=profile.idle_timeout)
    assert abs((utc(sb.idle_expires_at) - target).total_seconds()) < 10, (sb.idle_expires_at, target)
    # keepalive never touches the TTL.
    assert utc(sb.expires_at) == expires


async def test_delete(client: BayClient) -> None:
    sb = await client.create_sandbox()
    await sb.delete()
    with pytest.raises(NotFoundError):
        await client.get_sandbox(sb.id)
    with pytest.raises(NotFoundError):
        await sb.refresh()
    await sb.delete()  # a second delete is a no-op (204)
    ids = {i.id for i in (await client.list_sandboxes(limit=200)).items}
    assert sb.id not in ids


# ------------------------------------------------------------------ extend_ttl


async def test_extend_ttl_success(new_sandbox: SandboxFactory) -> None:
    sb = await new_sandbox(ttl=600)
    old = utc(sb.expires_at)
    await sb.extend_ttl(300)
    # expires_at = max(old, now) + extend_by; old is in the future.
    assert abs((utc(sb.expires_at) - (old + timedelta(seconds=300))).total_seconds()) < 1, (old, sb.expires_at)
    extended = utc(sb.expires_at)
    await sb.refresh()
    assert utc(sb.expires_at) == extended


async def test_extend_ttl_infinite(new_sandbox: SandboxFactory) -> None:
    sb = await new_sandbox()
    with pytest.raises(SandboxTTLInfiniteError) as e:
        await sb.extend_ttl(60)
    assert e.value.details.get("sandbox_id") == sb.id


async def test_extend_ttl_expired(new_sandbox: SandboxFactory) -> None:
    sb = await new_sandbox(ttl=1)
    await asyncio.sleep(2.2)
    await sb.refresh()
    assert sb.status == SandboxStatus.EXPIRED
    with pytest.raises(SandboxExpiredError) as e:
        await sb.extend_ttl(60)
    assert e.value.details.get("sandbox_id") == sb.id
    assert e.value.details.get("expires_at")


async def test_extend_ttl_not_positive(client: BayClient, sandbox: Sandbox) -> None:
    # The SDK refuses it before sending anything...
    with pytest.raises(pydantic.ValidationError):
        await sandbox.extend_ttl(0)
    # ...and Bay answers 400 validation_error when it does get one.
    for extend_by in (0, -5):
        with pytest.raises(ValidationError):
            await client.http.post(f"/v1/sandboxes/{sandbox.id}/extend_ttl", json={"extend_by": extend_by})


# ---------------------------------------------------------------- idempotency


async def test_create_idempotency_replay(client: BayClient, module_sandboxes: SandboxFactory) -> None:
    key = uid()
    first = await client.create_sandbox(ttl=600, idempotency_key=key)
    module_sandboxes.created.append(first)
    again = await client.create_sandbox(ttl=600, idempotency_key=key)
    assert again.id == first.id
    assert again.cargo_id == first.cargo_id
    assert again.status == first.status
    assert utc(again.created_at) == utc(first.created_at)
    assert utc(again.expires_at) == utc(first.expires_at)
    assert again._info == first._info  # the stored response is replayed verbatim
    ids = [i.id for i in (await client.list_sandboxes(limit=200)).items]
    assert ids.count(first.id) == 1

    # Same key, different body → conflict (no new sandbox).
    with pytest.raises(ConflictError):
        await client.create_sandbox(ttl=601, idempotency_key=key)
    assert len((await client.list_sandboxes(limit=200)).items) == len(ids)


async def test_create_idempotency_raw_replay(raw: httpx.AsyncClient, client: BayClient, module_sandboxes: SandboxFactory) -> None:
    """The fingerprint is taken over the parsed request with defaults, so `{}`
    and the SDK's `{"profile": "python-default"}` are the same request; the
    replay has the original status and the same bytes."""
    key = uid()
    r1 = await raw.post("/v1/sandboxes", json={}, headers={"Idempotency-Key": key})
    assert r1.status_code == 201, r1.text
    r2 = await raw.post("/v1/sandboxes", json={}, headers={"Idempotency-Key": key})
    assert r2.status_code == 201, r2.text
    assert r2.content == r1.content
    sb = await client.create_sandbox(idempotency_key=key)
    module_sandboxes.created.append(sb)
    assert sb.id == r1.json()["id"]


async def test_create_idempotency_bad_key(client: BayClient) -> None:
    for key in ("has space", "bad!key", "x" * 129):
        with pytest.raises(ConflictError):
            await client.create_sandbox(idempotency_key=key)


async def test_extend_ttl_idempotency(new_sandbox: SandboxFactory) -> None:
    sb = await new_sandbox(ttl=600)
    key = uid()
    await sb.extend_ttl(100, idempotency_key=key)
    first = utc(sb.expires_at)
    await asyncio.sleep(0.05)
    await sb.extend_ttl(100, idempotency_key=key)  # replay: not extended twice
    assert utc(sb.expires_at) == first
    await sb.refresh()
    assert utc(sb.expires_at) == first

    with pytest.raises(ConflictError):
        await sb.extend_ttl(200, idempotency_key=key)
    with pytest.raises(ConflictError):
        await sb.extend_ttl(100, idempotency_key="not a valid key")
    await sb.refresh()
    assert utc(sb.expires_at) == first


async def test_idempotency_key_scope_spans_endpoints(client: BayClient, new_sandbox: SandboxFactory) -> None:
    """One key per owner across create sandbox, extend_ttl and create cargo."""
    key = uid()
    sb = await new_sandbox(ttl=600, idempotency_key=key)
    with pytest.raises(ConflictError):
        await sb.extend_ttl(100, idempotency_key=key)
