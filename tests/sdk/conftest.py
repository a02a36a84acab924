"""Shared fixtures of the Shipyard Neo SDK compatibility suite.

run.sh starts the Bays and sets:
  BAY_ENDPOINT / BAY_TOKEN  the strict Bay (API key, anonymous access off) and its key;
  BAY_ANON_ENDPOINT         a Bay with the same key and anonymous access on
                            (the owner comes from X-Owner), for owner isolation.

All tests share one event loop (pytest.ini), one BayClient for the session and,
per module, sandboxes that are reused wherever a test does not need a fresh one.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timezone

import httpx
import pytest
import pytest_asyncio
from shipyard_neo import BayClient, BayError, SandboxInfo, SandboxStatus
from shipyard_neo.sandbox import Sandbox

ENDPOINT = os.environ.get("BAY_ENDPOINT", "")
TOKEN = os.environ.get("BAY_TOKEN", "")
ANON_ENDPOINT = os.environ.get("BAY_ANON_ENDPOINT", "")

SANDBOX_ID = r"^sandbox-[0-9a-f]{12}$"
CARGO_ID = r"^ws-[0-9a-f]{12}$"
EXEC_ID = r"^exec-[0-9a-f]{12}$"


def pytest_configure(config: pytest.Config) -> None:
    if not ENDPOINT or not TOKEN:
        raise pytest.UsageError("BAY_ENDPOINT and BAY_TOKEN must be set: run the suite with tests/sdk/run.sh")


def uid(prefix: str = "k") -> str:
    """A unique token usable as an Idempotency-Key or skill key."""
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def utc(dt: datetime | None) -> datetime | None:
    """Bay sends naive UTC timestamps; accept an explicit offset too."""
    if dt is None:
        return None
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def now() -> datetime:
    return datetime.now(timezone.utc)


async def eventually(fn: Callable[[], Awaitable[bool]], timeout: float = 30.0, every: float = 0.25) -> None:
    """Polls `fn` until it returns true (or fails after `timeout` seconds)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        if await fn():
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(every)


def handle(client: BayClient, sandbox_id: str) -> Sandbox:
    """A Sandbox object for an id the caller did not get from Bay (someone
    else's or a missing sandbox), to call its methods."""
    info = SandboxInfo(
        id=sandbox_id,
        status=SandboxStatus.IDLE,
        profile="python-default",
        cargo_id="ws-000000000000",
        capabilities=["filesystem", "shell", "python"],
        created_at=datetime.now(timezone.utc),
        expires_at=None,
        idle_expires_at=None,
    )
    return Sandbox(client.http, info)


@pytest_asyncio.fixture(scope="session")
async def client() -> AsyncIterator[BayClient]:
    """The SDK client, configured from BAY_ENDPOINT/BAY_TOKEN like a user would."""
    async with BayClient() as c:
        yield c


@pytest_asyncio.fixture(scope="session")
async def raw() -> AsyncIterator[httpx.AsyncClient]:
    """Plain HTTP to the strict Bay, for the few wire details the SDK hides."""
    async with httpx.AsyncClient(
        base_url=ENDPOINT, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60.0
    ) as c:
        yield c


class SandboxFactory:
    """Creates sandboxes and deletes them when its scope ends."""

    def __init__(self, client: BayClient) -> None:
        self.client = client
        self.created: list[Sandbox] = []

    async def __call__(self, **kwargs) -> Sandbox:
        sb = await self.client.create_sandbox(**kwargs)
        self.created.append(sb)
        return sb

    async def cleanup(self) -> None:
        for sb in reversed(self.created):
            try:
                await sb.delete()
            except BayError:
                pass


@pytest_asyncio.fixture
async def new_sandbox(client: BayClient) -> AsyncIterator[SandboxFactory]:
    """`await new_sandbox(ttl=...)`: a fresh sandbox, deleted after the test."""
    factory = SandboxFactory(client)
    yield factory
    await factory.cleanup()


@pytest_asyncio.fixture(scope="module")
async def module_sandboxes(client: BayClient) -> AsyncIterator[SandboxFactory]:
    """Sandboxes shared by the tests of one module, deleted after it."""
    factory = SandboxFactory(client)
    yield factory
    await factory.cleanup()


@pytest_asyncio.fixture(scope="module")
async def sandbox(module_sandboxes: SandboxFactory) -> Sandbox:
    """One python-default sandbox shared by the tests of a module."""
    return await module_sandboxes()
