"""sandbox.python.exec and sandbox.shell.exec (reference §1.4)."""

from __future__ import annotations

import re

import pytest
from shipyard_neo import InvalidPathError, PythonExecResult, ShellExecResult
from shipyard_neo.sandbox import Sandbox

from conftest import EXEC_ID

# ---------------------------------------------------------------------- python


async def test_python_output(sandbox: Sandbox) -> None:
    r = await sandbox.python.exec("print('hello from python')")
    assert isinstance(r, PythonExecResult)
    assert r.success, r
    assert r.output.strip() == "hello from python"
    assert r.error is None
    assert re.match(EXEC_ID, r.execution_id or ""), r.execution_id
    assert isinstance(r.execution_time_ms, int) and r.execution_time_ms >= 0
    assert r.code is None  # include_code defaults to false
    assert r.data is not None
    assert r.data["output"]["text"].strip() == "hello from python"
    assert isinstance(r.data["execution_count"], int)


async def test_python_state_persists(sandbox: Sandbox) -> None:
    await sandbox.python.exec("counter = 41")
    r = await sandbox.python.exec("counter += 1\nprint(counter)")
    assert r.success, r
    assert r.output.strip() == "42"
    # An expression's value is displayed like in Jupyter.
    r = await sandbox.python.exec("counter * 2")
    assert r.success, r
    assert "84" in r.output


async def test_python_include_code(sandbox: Sandbox) -> None:
    code = "print(6 * 7)"
    r = await sandbox.python.exec(code, include_code=True)
    assert r.success and r.code == code, r
    r = await sandbox.python.exec(code, include_code=False)
    assert r.code is None


async def test_python_description_and_tags(sandbox: Sandbox) -> None:
    r = await sandbox.python.exec("x_tagged = 1", description="set x", tags=" beta, alpha,beta ")
    assert r.success, r
    entry = await sandbox.get_execution(r.execution_id)
    assert entry.description == "set x"
    assert entry.tags == "alpha,beta"  # trimmed, deduplicated, sorted


async def test_python_exception(sandbox: Sandbox) -> None:
    r = await sandbox.python.exec("1 / 0")
    assert not r.success
    assert "ZeroDivisionError" in (r.error or ""), r
    assert re.match(EXEC_ID, r.execution_id or "")


async def test_python_timeout(sandbox: Sandbox) -> None:
    r = await sandbox.python.exec("import time\ntime.sleep(30)", timeout=1)
    assert not r.success, r
    assert "timed out" in (r.error or "").lower(), r
    # The kernel is usable afterwards (state included).
    r = await sandbox.python.exec("print(counter)")
    assert r.success and r.output.strip() == "42", r


async def test_python_image_output(sandbox: Sandbox) -> None:
    """Rich output: data.output.images carries base64 PNGs."""
    code = (
        "import base64\n"
        "from IPython.display import Image, display\n"
        "png = base64.b64decode('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==')\n"
        "display(Image(data=png))\n"
    )
    r = await sandbox.python.exec(code)
    assert r.success, r
    images = r.data["output"]["images"]
    assert images and "image/png" in images[0], r.data


# ----------------------------------------------------------------------- shell


async def test_shell_output(sandbox: Sandbox) -> None:
    r = await sandbox.shell.exec("echo hello from shell")
    assert isinstance(r, ShellExecResult)
    assert r.success, r
    assert r.output.strip() == "hello from shell"
    assert r.exit_code == 0
    assert re.match(EXEC_ID, r.execution_id or ""), r.execution_id
    assert isinstance(r.execution_time_ms, int)
    assert r.command is None


async def test_shell_default_cwd_is_workspace(sandbox: Sandbox) -> None:
    r = await sandbox.shell.exec("pwd; echo $HOME")
    assert r.output.split() == ["/workspace", "/workspace"], r


async def test_shell_cwd(sandbox: Sandbox) -> None:
    r = await sandbox.shell.exec("mkdir -p sub/dir && echo made")
    assert r.success, r
    r = await sandbox.shell.exec("pwd", cwd="sub/dir")
    assert r.success and r.output.strip() == "/workspace/sub/dir", r
    # cwd is normalized before use.
    r = await sandbox.shell.exec("pwd", cwd="sub/./dir/../dir/")
    assert r.success and r.output.strip() == "/workspace/sub/dir", r


@pytest.mark.parametrize(
    "cwd,reason",
    [("/etc", "absolute_path"), ("../", "path_traversal"), ("sub/../../x", "path_traversal"), ("", "empty_path")],
)
async def test_shell_invalid_cwd(sandbox: Sandbox, cwd: str, reason: str) -> None:
    with pytest.raises(InvalidPathError) as e:
        await sandbox.shell.exec("pwd", cwd=cwd)
    assert e.value.details.get("field") == "cwd", e.value.details
    assert e.value.details.get("reason") == reason, e.value.details


async def test_shell_non_zero_exit(sandbox: Sandbox) -> None:
    r = await sandbox.shell.exec("echo partial; echo broken >&2; exit 3")
    assert not r.success
    assert r.exit_code == 3
    assert r.output.strip() == "partial"
    assert "broken" in (r.error or ""), r  # stderr comes back in `error`


async def test_shell_include_code_and_tags(sandbox: Sandbox) -> None:
    r = await sandbox.shell.exec("true", include_code=True, description="noop", tags="shell")
    assert r.success and r.command == "true", r
    entry = await sandbox.get_execution(r.execution_id)
    assert (entry.exec_type, entry.code, entry.description, entry.tags) == ("shell", "true", "noop", "shell")


async def test_shell_timeout(sandbox: Sandbox) -> None:
    r = await sandbox.shell.exec("sleep 30", timeout=1)
    assert not r.success
    assert r.exit_code == -1, r
    assert "timed out" in (r.error or "").lower(), r


async def test_shell_and_python_share_workspace(sandbox: Sandbox) -> None:
    await sandbox.shell.exec("echo from-shell > shared.txt")
    r = await sandbox.python.exec("print(open('/workspace/shared.txt').read().strip())")
    assert r.output.strip() == "from-shell", r
