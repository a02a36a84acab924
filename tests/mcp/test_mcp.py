"""Bay's /mcp endpoint driven by the official MCP Python SDK (`mcp`).

run.sh starts a Bay (API key, anonymous access off, the repository's
profiles) and sets BAY_ENDPOINT / BAY_TOKEN. The client connects over
Streamable HTTP with the key as a Bearer token, both with the initialize
handshake ("legacy") and with the SDK's default negotiation ("auto", which
probes server/discover first).
"""

from __future__ import annotations

import base64
import os
import re
from contextlib import asynccontextmanager
from collections.abc import AsyncIterator

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

ENDPOINT = os.environ.get("BAY_ENDPOINT", "")
TOKEN = os.environ.get("BAY_TOKEN", "")

SHIPYARD_NEO_TOOLS = {
    "create_sandbox", "delete_sandbox", "execute_python", "execute_shell", "read_file", "write_file", "list_files",
    "delete_file", "upload_file", "download_file", "get_execution_history", "get_execution", "get_last_execution",
    "annotate_execution", "create_skill_payload", "get_skill_payload", "create_skill_candidate",
    "evaluate_skill_candidate", "promote_skill_candidate", "list_skill_candidates", "list_skill_releases",
    "delete_skill_release", "delete_skill_candidate", "rollback_skill_release", "execute_browser",
    "execute_browser_batch", "list_profiles",
}
BAY_TOOLS = {
    "stop_sandbox", "pause_sandbox", "resume_sandbox", "preview_port", "keepalive_sandbox", "extend_ttl", "get_sandbox", "list_sandboxes", "create_cargo", "list_cargos",
    "delete_cargo",
}


if not ENDPOINT or not TOKEN:
    raise pytest.UsageError("BAY_ENDPOINT and BAY_TOKEN must be set: run the suite with tests/mcp/run.sh")


@asynccontextmanager
async def connect(mode: str = "auto", token: str = TOKEN) -> AsyncIterator[Client]:
    # Cold starts (a browser profile pulls up Chromium) can take a while.
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(600.0))
    async with http:
        async with Client(streamable_http_client(f"{ENDPOINT}/mcp", http_client=http), mode=mode) as client:
            yield client


async def call(client: Client, tool: str, **args: object) -> str:
    """Calls a tool that must succeed; returns its first text block."""
    result = await client.call_tool(tool, args)
    text = result.content[0].text
    assert not result.is_error, f"{tool}({args}) failed: {text}"
    return text


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_list_tools(mode: str) -> None:
    async with connect(mode) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == SHIPYARD_NEO_TOOLS | BAY_TOOLS
    py = tools["execute_python"].input_schema
    assert set(py["required"]) == {"sandbox_id", "code"}
    assert (py["properties"]["timeout"]["minimum"], py["properties"]["timeout"]["maximum"]) == (1, 300)
    assert "content_base64" in tools["upload_file"].input_schema["properties"]
    assert "base64" in tools["download_file"].description


async def test_a_wrong_key_is_refused() -> None:
    with pytest.raises(Exception):
        async with connect("legacy", token="sk-not-the-key") as client:
            await client.list_tools()


async def test_sandbox_python_files_browser() -> None:
    async with connect() as client:
        profiles = await call(client, "list_profiles")
        assert "**browser-python**" in profiles, profiles

        created = await call(client, "create_sandbox", profile="browser-python", ttl=900)
        sandbox_id = re.search(r"`(sandbox-[0-9a-f]{12})`", created).group(1)
        try:
            assert "**Profile:** browser-python" in created and "browser" in created, created

            # Python, with state kept between calls.
            out = await call(client, "execute_python", sandbox_id=sandbox_id, code="x = 6 * 7\nprint(x)")
            assert out.startswith("**Execution successful**") and "42" in out, out
            out = await call(client, "execute_python", sandbox_id=sandbox_id, code="print(x + 1)", tags="mcp")
            assert "43" in out and re.search(r"execution_id: exec-[0-9a-f]{12}", out), out
            failed = await client.call_tool("execute_python", {"sandbox_id": sandbox_id, "code": "1 / 0"})
            assert "**Execution failed**" in failed.content[0].text and "ZeroDivisionError" in failed.content[0].text

            # Text files.
            out = await call(client, "write_file", sandbox_id=sandbox_id, path="notes/hello.txt", content="hello from mcp\n")
            assert out == "File `notes/hello.txt` written successfully (15 bytes).", out
            out = await call(client, "read_file", sandbox_id=sandbox_id, path="notes/hello.txt")
            assert out == "**File: notes/hello.txt**\n\n```\nhello from mcp\n\n```", out
            out = await call(client, "list_files", sandbox_id=sandbox_id, path="notes")
            assert "📄 hello.txt (15 bytes)" in out, out

            # Binary files travel as base64.
            blob = bytes(range(256)) * 64
            out = await call(client, "upload_file", sandbox_id=sandbox_id, sandbox_path="bin/data.bin",
                             content_base64=base64.b64encode(blob).decode())
            assert f"**Size:** {len(blob)} bytes" in out, out
            result = await client.call_tool("download_file", {"sandbox_id": sandbox_id, "sandbox_path": "bin/data.bin"})
            assert not result.is_error, result.content[0].text
            assert base64.b64decode(result.content[1].text) == blob
            out = await call(client, "execute_shell", sandbox_id=sandbox_id, command="wc -c < bin/data.bin")
            assert out.startswith("**Command successful** (exit code: 0)") and str(len(blob)) in out, out

            # The browser container.
            out = await call(client, "execute_browser", sandbox_id=sandbox_id, cmd="open about:blank")
            assert out.startswith("**Browser command successful** (exit code: 0)"), out

            history = await call(client, "get_execution_history", sandbox_id=sandbox_id)
            assert "| python |" in history and "| browser |" in history and "| shell |" in history, history
            tagged = await call(client, "get_execution_history", sandbox_id=sandbox_id, tags="mcp")
            assert tagged.startswith("Total: 1"), tagged

            # Errors are text, with REST's code.
            missing = await client.call_tool("read_file", {"sandbox_id": sandbox_id, "path": "nope.txt"})
            assert missing.is_error and missing.content[0].text.startswith("**API Error:** [file_not_found]"), missing.content[0].text
            bad = await client.call_tool("read_file", {"sandbox_id": sandbox_id, "path": "/etc/passwd"})
            assert bad.is_error and bad.content[0].text.startswith("**Validation Error:**"), bad.content[0].text
        finally:
            out = await call(client, "delete_sandbox", sandbox_id=sandbox_id)
        assert out == f"Sandbox `{sandbox_id}` deleted successfully.", out
        gone = await client.call_tool("get_sandbox", {"sandbox_id": sandbox_id})
        assert gone.is_error and gone.content[0].text.startswith("**API Error:** [not_found]"), gone.content[0].text
