"""Execution history: get_execution_history (filters, pagination),
get_execution, get_last_execution, annotate_execution (reference §1.5)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
from shipyard_neo import BayError, ExecutionHistoryEntry, ExecutionHistoryList, NotFoundError
from shipyard_neo.sandbox import Sandbox

from conftest import SandboxFactory


@dataclass
class Recorded:
    sandbox: Sandbox
    py_ok: str
    py_fail: str
    sh_ok: str
    sh_fail: str
    py_tagged: str

    @property
    def order(self) -> list[str]:
        """Newest first, as the API lists them."""
        return [self.py_tagged, self.sh_fail, self.sh_ok, self.py_fail, self.py_ok]


@pytest_asyncio.fixture(scope="module")
async def rec(module_sandboxes: SandboxFactory) -> AsyncIterator[Recorded]:
    sb = await module_sandboxes()
    py_ok = await sb.python.exec("print('ok')", description="first python")
    py_fail = await sb.python.exec("raise ValueError('nope')")
    sh_ok = await sb.shell.exec("echo shell-ok", tags="shell,smoke")
    sh_fail = await sb.shell.exec("exit 7")
    py_tagged = await sb.python.exec("y = 2", tags="data, etl", description="tagged one")
    yield Recorded(sb, py_ok.execution_id, py_fail.execution_id, sh_ok.execution_id, sh_fail.execution_id, py_tagged.execution_id)


async def test_history_lists_everything_newest_first(rec: Recorded) -> None:
    h = await rec.sandbox.get_execution_history()
    assert isinstance(h, ExecutionHistoryList)
    assert h.total == 5
    assert [e.id for e in h.entries] == rec.order
    assert all(isinstance(e, ExecutionHistoryEntry) for e in h.entries)
    by_id = {e.id: e for e in h.entries}
    ok = by_id[rec.py_ok]
    assert (ok.exec_type, ok.code, ok.success, ok.description) == ("python", "print('ok')", True, "first python")
    assert (ok.output or "").strip() == "ok"
    assert ok.learn_enabled is False and ok.learn_status is None
    assert ok.session_id
    fail = by_id[rec.py_fail]
    assert not fail.success and "ValueError" in (fail.error or "")
    sh = by_id[rec.sh_fail]
    assert (sh.exec_type, sh.code, sh.success) == ("shell", "exit 7", False)


async def test_history_filters(rec: Recorded) -> None:
    sb = rec.sandbox
    py = await sb.get_execution_history(exec_type="python")
    assert [e.id for e in py.entries] == [rec.py_tagged, rec.py_fail, rec.py_ok] and py.total == 3
    sh = await sb.get_execution_history(exec_type="shell")
    assert [e.id for e in sh.entries] == [rec.sh_fail, rec.sh_ok]

    ok = await sb.get_execution_history(success_only=True)
    assert [e.id for e in ok.entries] == [rec.py_tagged, rec.sh_ok, rec.py_ok] and ok.total == 3
    ok_py = await sb.get_execution_history(exec_type="python", success_only=True)
    assert [e.id for e in ok_py.entries] == [rec.py_tagged, rec.py_ok]

    tagged = await sb.get_execution_history(tags="etl")
    assert [e.id for e in tagged.entries] == [rec.py_tagged]
    either = await sb.get_execution_history(tags="smoke, data")  # OR of the tags
    assert [e.id for e in either.entries] == [rec.py_tagged, rec.sh_ok]

    described = await sb.get_execution_history(has_description=True)
    assert [e.id for e in described.entries] == [rec.py_tagged, rec.py_ok]


async def test_history_pagination(rec: Recorded) -> None:
    sb = rec.sandbox
    page1 = await sb.get_execution_history(limit=2)
    page2 = await sb.get_execution_history(limit=2, offset=2)
    page3 = await sb.get_execution_history(limit=2, offset=4)
    assert [e.id for e in page1.entries + page2.entries + page3.entries] == rec.order
    assert page1.total == page2.total == page3.total == 5
    empty = await sb.get_execution_history(offset=50)
    assert empty.entries == [] and empty.total == 5


async def test_history_bad_exec_type(rec: Recorded) -> None:
    with pytest.raises(BayError):  # 422 from request validation
        await rec.sandbox.get_execution_history(exec_type="javascript")


async def test_get_execution(rec: Recorded) -> None:
    e = await rec.sandbox.get_execution(rec.py_tagged)
    assert e.id == rec.py_tagged
    assert e.exec_type == "python"
    assert e.code == "y = 2"
    assert e.tags == "data,etl"
    assert e.description == "tagged one"
    assert e.created_at is not None
    with pytest.raises(NotFoundError):
        await rec.sandbox.get_execution("exec-000000000000")


async def test_get_execution_of_another_sandbox(rec: Recorded, module_sandboxes: SandboxFactory) -> None:
    other = await module_sandboxes()
    with pytest.raises(NotFoundError):
        await other.get_execution(rec.py_ok)


async def test_get_last_execution(rec: Recorded, module_sandboxes: SandboxFactory) -> None:
    last = await rec.sandbox.get_last_execution()
    assert last.id == rec.py_tagged
    last_shell = await rec.sandbox.get_last_execution(exec_type="shell")
    assert last_shell.id == rec.sh_fail
    fresh = await module_sandboxes()
    with pytest.raises(NotFoundError):
        await fresh.get_last_execution()


async def test_annotate_execution(rec: Recorded) -> None:
    sb = rec.sandbox
    assert (await sb.get_execution_history(has_notes=True)).total == 0

    e = await sb.annotate_execution(rec.sh_ok, notes="worth keeping")
    assert e.id == rec.sh_ok
    assert e.notes == "worth keeping"
    assert e.tags == "shell,smoke"  # untouched: only given fields change
    assert e.description is None

    e = await sb.annotate_execution(rec.sh_ok, description="echo test", tags="zeta, alpha ,zeta")
    assert (e.description, e.tags, e.notes) == ("echo test", "alpha,zeta", "worth keeping")
    assert (await sb.get_execution(rec.sh_ok)).tags == "alpha,zeta"

    noted = await sb.get_execution_history(has_notes=True)
    assert [x.id for x in noted.entries] == [rec.sh_ok]
    described = await sb.get_execution_history(has_description=True)
    assert [x.id for x in described.entries] == [rec.py_tagged, rec.sh_ok, rec.py_ok]

    with pytest.raises(NotFoundError):
        await sb.annotate_execution("exec-000000000000", notes="x")


async def test_filesystem_calls_are_not_recorded(rec: Recorded) -> None:
    before = (await rec.sandbox.get_execution_history()).total
    await rec.sandbox.filesystem.write_file("h.txt", "x")
    await rec.sandbox.filesystem.read_file("h.txt")
    assert (await rec.sandbox.get_execution_history()).total == before


async def test_history_of_missing_sandbox(client) -> None:
    sb = await client.create_sandbox()
    await sb.delete()
    with pytest.raises(NotFoundError):
        await sb.get_execution_history()
