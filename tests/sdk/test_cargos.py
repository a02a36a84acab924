"""client.cargos: create/get/list/delete, external cargos shared by sandboxes,
delete protection (reference §1.6, §3.5)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from shipyard_neo import BayClient, BayError, CargoInfo, CargoList, ConflictError, NotFoundError

from conftest import CARGO_ID, SandboxFactory, now, uid, utc


class Cargos:
    """External cargos created by a test, deleted afterwards."""

    def __init__(self, client: BayClient) -> None:
        self.client = client
        self.ids: list[str] = []

    async def __call__(self, **kwargs) -> CargoInfo:
        c = await self.client.cargos.create(**kwargs)
        self.ids.append(c.id)
        return c


@pytest_asyncio.fixture
async def cargos(client: BayClient, new_sandbox: SandboxFactory) -> AsyncIterator[Cargos]:
    # Depends on new_sandbox so that sandboxes (which hold the cargos) are
    # deleted first: fixtures are torn down in reverse order.
    c = Cargos(client)
    yield c
    for cid in c.ids:
        try:
            await client.cargos.delete(cid)
        except BayError:
            pass


async def list_all(client: BayClient, managed: bool | None = None) -> list[CargoInfo]:
    items: list[CargoInfo] = []
    cursor = None
    for _ in range(1000):
        page = await client.cargos.list(limit=200, cursor=cursor, managed=managed)
        items += page.items
        if page.next_cursor is None:
            return items
        cursor = page.next_cursor
    raise AssertionError("cargo pagination did not end")


async def test_create_default(client: BayClient, cargos: Cargos) -> None:
    before = now()
    c = await cargos()
    assert isinstance(c, CargoInfo)
    assert re.match(CARGO_ID, c.id), c.id
    assert c.managed is False
    assert c.managed_by_sandbox_id is None
    assert c.backend == "docker_volume"
    assert c.size_limit_mb == 1024  # cargo.default_size_limit_mb
    assert abs((utc(c.created_at) - before).total_seconds()) < 10
    assert utc(c.last_accessed_at) is not None


async def test_create_with_size_limit(client: BayClient, cargos: Cargos) -> None:
    c = await cargos(size_limit_mb=64)
    assert c.size_limit_mb == 64
    got = await client.cargos.get(c.id)
    assert got.size_limit_mb == 64


async def test_create_idempotency(client: BayClient, cargos: Cargos) -> None:
    key = uid()
    first = await cargos(size_limit_mb=32, idempotency_key=key)
    again = await cargos(size_limit_mb=32, idempotency_key=key)
    assert again == first
    assert [c.id for c in await list_all(client)].count(first.id) == 1
    with pytest.raises(ConflictError):
        await client.cargos.create(size_limit_mb=33, idempotency_key=key)
    with pytest.raises(ConflictError):
        await client.cargos.create(idempotency_key="no spaces allowed")


async def test_idempotency_key_shared_with_sandboxes(client: BayClient, cargos: Cargos, new_sandbox: SandboxFactory) -> None:
    """The key space is (owner, key) across the three idempotent endpoints."""
    key = uid()
    await new_sandbox(idempotency_key=key)
    with pytest.raises(ConflictError):
        await client.cargos.create(idempotency_key=key)


async def test_get(client: BayClient, cargos: Cargos) -> None:
    c = await cargos()
    got = await client.cargos.get(c.id)
    assert got.id == c.id
    assert got.managed == c.managed
    assert got.backend == c.backend
    assert utc(got.created_at) == utc(c.created_at)
    with pytest.raises(NotFoundError):
        await client.cargos.get("ws-000000000000")


async def test_list_external_and_managed(client: BayClient, cargos: Cargos, new_sandbox: SandboxFactory) -> None:
    external = [await cargos(), await cargos()]
    sb = await new_sandbox()

    default = await client.cargos.list()
    assert isinstance(default, CargoList)
    ids = {c.id for c in await list_all(client)}
    assert {c.id for c in external} <= ids
    assert sb.cargo_id not in ids  # default: external only
    assert all(not c.managed for c in default.items)

    external_only = {c.id for c in await list_all(client, managed=False)}
    assert external_only == ids

    managed = await list_all(client, managed=True)
    assert all(c.managed for c in managed)
    mine = {c.id: c for c in managed}
    assert sb.cargo_id in mine
    assert mine[sb.cargo_id].managed_by_sandbox_id == sb.id
    assert not ({c.id for c in external} & set(mine))


async def test_list_pagination(client: BayClient, cargos: Cargos) -> None:
    created = {(await cargos()).id for _ in range(3)}
    seen: list[str] = []
    cursor = None
    for _ in range(1000):
        page = await client.cargos.list(limit=1, cursor=cursor)
        assert len(page.items) <= 1
        seen += [c.id for c in page.items]
        if page.next_cursor is None:
            break
        assert page.next_cursor == page.items[-1].id
        cursor = page.next_cursor
    assert created <= set(seen)
    assert seen == sorted(seen) and len(seen) == len(set(seen))
    assert [c.id for c in (await client.cargos.list(limit=200)).items] == seen


async def test_delete(client: BayClient, cargos: Cargos) -> None:
    c = await cargos()
    await client.cargos.delete(c.id)
    with pytest.raises(NotFoundError):
        await client.cargos.get(c.id)
    assert c.id not in {x.id for x in await list_all(client)}
    with pytest.raises(NotFoundError):
        await client.cargos.delete(c.id)


async def test_external_cargo_shared_by_two_sandboxes(client: BayClient, cargos: Cargos, new_sandbox: SandboxFactory) -> None:
    cargo = await cargos()
    a = await new_sandbox(cargo_id=cargo.id)
    b = await new_sandbox(cargo_id=cargo.id)
    assert a.cargo_id == b.cargo_id == cargo.id
    await a.filesystem.write_file("shared/from-a.txt", "written by a")
    assert await b.filesystem.read_file("shared/from-a.txt") == "written by a"
    await b.filesystem.upload("shared/from-b.bin", b"\x00\x01b")
    assert await a.filesystem.download("shared/from-b.bin") == b"\x00\x01b"
    r = await b.shell.exec("cat /workspace/shared/from-a.txt")
    assert r.output == "written by a"

    # Delete protection: in use by two sandboxes.
    with pytest.raises(ConflictError) as e:
        await client.cargos.delete(cargo.id)
    assert set(e.value.details.get("active_sandbox_ids", [])) == {a.id, b.id}, e.value.details

    # Deleting a sandbox never touches an external cargo.
    await a.delete()
    with pytest.raises(ConflictError) as e:
        await client.cargos.delete(cargo.id)
    assert e.value.details.get("active_sandbox_ids") == [b.id], e.value.details
    await b.delete()

    # The data outlives both sandboxes.
    c = await new_sandbox(cargo_id=cargo.id)
    assert await c.filesystem.read_file("shared/from-a.txt") == "written by a"
    await c.delete()

    await client.cargos.delete(cargo.id)
    with pytest.raises(NotFoundError):
        await client.cargos.get(cargo.id)


async def test_managed_cargo_lifecycle(client: BayClient, new_sandbox: SandboxFactory) -> None:
    sb = await new_sandbox()
    managed = await client.cargos.get(sb.cargo_id)
    assert managed.managed is True
    assert managed.managed_by_sandbox_id == sb.id
    with pytest.raises(ConflictError) as e:
        await client.cargos.delete(sb.cargo_id)
    assert e.value.details.get("managed_by_sandbox_id") == sb.id, e.value.details
    await sb.delete()
    # The managed cargo goes with its sandbox.
    with pytest.raises(NotFoundError):
        await client.cargos.get(sb.cargo_id)


async def test_sandbox_on_missing_cargo(client: BayClient) -> None:
    with pytest.raises(NotFoundError):
        await client.create_sandbox(cargo_id="ws-000000000000")
