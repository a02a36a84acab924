"""The few wire details the SDK relies on without showing them (reference §1.0, §2)."""

from __future__ import annotations

import re

import httpx

from conftest import ENDPOINT

NAIVE_UTC = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?$"


async def test_health() -> None:
    async with httpx.AsyncClient(base_url=ENDPOINT) as http:
        r = await http.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert re.match(r"^\d+\.\d+\.\d+", body["version"]), body


async def test_sandbox_response_shape(raw: httpx.AsyncClient) -> None:
    r = await raw.post("/v1/sandboxes", json={"ttl": 600})
    assert r.status_code == 201, r.text
    body = r.json()
    try:
        # Every key is present, nulls included; timestamps are naive UTC.
        assert set(body) == {
            "id", "status", "profile", "cargo_id", "capabilities",
            "created_at", "expires_at", "idle_expires_at", "containers",
        }, body
        assert body["containers"] is None
        assert re.match(NAIVE_UTC, body["created_at"]), body["created_at"]
        assert re.match(NAIVE_UTC, body["expires_at"]), body["expires_at"]
        assert r.headers.get("x-request-id")
    finally:
        d = await raw.delete(f"/v1/sandboxes/{body['id']}")
        assert d.status_code == 204 and d.content == b""


async def test_error_envelope_and_request_id(raw: httpx.AsyncClient) -> None:
    r = await raw.get("/v1/sandboxes/sandbox-000000000000", headers={"X-Request-Id": "req-sdk-suite-1"})
    assert r.status_code == 404
    assert r.headers.get("x-request-id") == "req-sdk-suite-1"
    err = r.json()["error"]
    assert err["code"] == "not_found"
    assert err["message"]
    assert err["request_id"] == "req-sdk-suite-1"
