"""The error classes the SDK raises, from Bay's error envelope (reference §2),
and owner isolation (§4.3)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from shipyard_neo import (
    BayClient,
    CapabilityNotSupportedError,
    CargoFileNotFoundError,
    InvalidPathError,
    NotFoundError,
    UnauthorizedError,
    ValidationError,
)
from shipyard_neo.sandbox import Sandbox

from conftest import ANON_ENDPOINT, ENDPOINT, TOKEN, handle

MISSING = "sandbox-000000000000"


async def test_not_found_missing_sandbox(client: BayClient) -> None:
    with pytest.raises(NotFoundError) as e:
        await client.get_sandbox(MISSING)
    assert MISSING in e.value.message
    sb = handle(client, MISSING)
    for call in (
        lambda: sb.refresh(),
        lambda: sb.stop(),
        lambda: sb.keepalive(),
        lambda: sb.delete(),
        lambda: sb.python.exec("1"),
        lambda: sb.shell.exec("true"),
        lambda: sb.filesystem.read_file("a.txt"),
        lambda: sb.filesystem.list_dir(),
        lambda: sb.get_execution_history(),
    ):
        with pytest.raises(NotFoundError):
            await call()


async def test_unauthorized_with_wrong_token() -> None:
    async with BayClient(endpoint_url=ENDPOINT, access_token="sk-wrong-token") as bad:
        with pytest.raises(UnauthorizedError):
            await bad.list_sandboxes()
        with pytest.raises(UnauthorizedError):
            await bad.create_sandbox()
        with pytest.raises(UnauthorizedError):
            await bad.get_sandbox(MISSING)
        with pytest.raises(UnauthorizedError):
            await bad.cargos.list()
        # Profiles need no authentication.
        assert (await bad.list_profiles()).items


async def test_unauthorized_on_anonymous_bay_too() -> None:
    """A wrong bearer is refused even where anonymous access is allowed."""
    async with BayClient(endpoint_url=ANON_ENDPOINT, access_token="sk-wrong-token") as bad:
        with pytest.raises(UnauthorizedError):
            await bad.list_sandboxes()


async def test_capability_not_supported(sandbox: Sandbox) -> None:
    if "browser" in sandbox.capabilities:
        pytest.skip("python-default has the browser capability here")
    with pytest.raises(CapabilityNotSupportedError) as e:
        await sandbox.browser.exec("open about:blank")
    assert e.value.details.get("capability") == "browser", e.value.details
    assert set(e.value.details.get("available", [])) == set(sandbox.capabilities)
    for call in (
        lambda: sandbox.browser.exec_batch(["open about:blank"]),
        lambda: sandbox.browser.run_skill("any-skill"),
    ):
        with pytest.raises(CapabilityNotSupportedError):
            await call()


async def test_capability_not_in_profile(client: BayClient, new_sandbox) -> None:
    """The profile-level check (reference §4.4) with a profile that has no
    python: refused with the capability and what the profile offers."""
    profiles = {p.id: p for p in (await client.list_profiles()).items}
    if "sdk-no-python" not in profiles:
        pytest.skip("the sdk-no-python profile is configured by run.sh")
    sb = await new_sandbox(profile="sdk-no-python")
    assert sb.profile == "sdk-no-python"
    assert sb.capabilities == ["filesystem", "shell"]
    with pytest.raises(CapabilityNotSupportedError) as e:
        await sb.python.exec("print(1)")
    assert e.value.details.get("capability") == "python", e.value.details
    assert e.value.details.get("available") == ["filesystem", "shell"], e.value.details
    assert "python" in e.value.message
    r = await sb.shell.exec("echo still works")
    assert r.success and r.output == "still works", r


async def test_validation_error(client: BayClient) -> None:
    with pytest.raises(ValidationError) as e:
        await client.create_sandbox(profile="definitely-not-a-profile")
    assert e.value.message


async def test_invalid_path_error(sandbox: Sandbox) -> None:
    with pytest.raises(InvalidPathError) as e:
        await sandbox.filesystem.read_file("../../etc/passwd")
    assert e.value.details.get("field") == "path", e.value.details
    assert e.value.details.get("reason") == "path_traversal", e.value.details


async def test_cargo_file_not_found(sandbox: Sandbox) -> None:
    with pytest.raises(CargoFileNotFoundError):
        await sandbox.filesystem.download("nope/missing.bin")


# ------------------------------------------------------------ owner isolation


@pytest_asyncio.fixture(scope="module")
async def anon() -> AsyncIterator[tuple[BayClient, httpx.AsyncClient]]:
    """The anonymous-mode Bay: the SDK (valid key → owner "default") and raw
    HTTP without a token (owner from X-Owner)."""
    async with BayClient(endpoint_url=ANON_ENDPOINT, access_token=TOKEN) as sdk:
        async with httpx.AsyncClient(base_url=ANON_ENDPOINT, timeout=60.0) as http:
            yield sdk, http


async def test_other_owners_sandbox_is_not_found(anon: tuple[BayClient, httpx.AsyncClient]) -> None:
    sdk, http = anon
    alice = {"X-Owner": "alice"}
    r = await http.post("/v1/sandboxes", json={}, headers=alice)
    assert r.status_code == 201, r.text
    theirs = r.json()
    try:
        with pytest.raises(NotFoundError):
            await sdk.get_sandbox(theirs["id"])
        assert theirs["id"] not in {s.id for s in (await sdk.list_sandboxes(limit=200)).items}
        sb = handle(sdk, theirs["id"])
        for call in (
            lambda: sb.python.exec("1"),
            lambda: sb.filesystem.write_file("x.txt", "x"),
            lambda: sb.stop(),
            lambda: sb.delete(),
            lambda: sb.extend_ttl(10),
        ):
            with pytest.raises(NotFoundError):
                await call()
        with pytest.raises(NotFoundError):
            await sdk.cargos.get(theirs["cargo_id"])
        with pytest.raises(NotFoundError):
            await sdk.create_sandbox(cargo_id=theirs["cargo_id"])

        # And the other way round: the SDK's sandbox is invisible to alice.
        mine = await sdk.create_sandbox()
        try:
            r = await http.get(f"/v1/sandboxes/{mine.id}", headers=alice)
            assert r.status_code == 404, r.text
            assert r.json()["error"]["code"] == "not_found"
            # Owner "default" through X-Owner is the API key's owner.
            r = await http.get(f"/v1/sandboxes/{mine.id}", headers={"X-Owner": "default"})
            assert r.status_code == 200, r.text
        finally:
            await mine.delete()
    finally:
        r = await http.delete(f"/v1/sandboxes/{theirs['id']}", headers=alice)
        assert r.status_code == 204, r.text
