"""client.list_profiles(detail=False/True) — GET /v1/profiles (reference §1.7)."""

from __future__ import annotations

from shipyard_neo import BayClient, ProfileList


async def test_list_profiles_summary(client: BayClient) -> None:
    profiles = await client.list_profiles()
    assert isinstance(profiles, ProfileList)
    by_id = {p.id: p for p in profiles.items}
    assert "python-default" in by_id, by_id.keys()
    p = by_id["python-default"]
    assert p.image
    assert set(p.capabilities) >= {"python", "shell", "filesystem"}
    assert isinstance(p.resources["cpus"], (int, float)) and p.resources["cpus"] > 0
    assert isinstance(p.resources["memory"], str) and p.resources["memory"]
    assert p.idle_timeout > 0
    # description and containers are only filled with detail=true.
    for item in profiles.items:
        assert item.description is None, item
        assert item.containers is None, item


async def test_list_profiles_detail(client: BayClient) -> None:
    profiles = await client.list_profiles(detail=True)
    by_id = {p.id: p for p in profiles.items}
    p = by_id["python-default"]
    assert p.description
    assert p.containers, p
    primary = p.containers[0]
    assert primary.name
    assert primary.runtime_type == "ship"
    assert set(primary.capabilities) >= {"python", "shell", "filesystem"}
    assert primary.capabilities == sorted(primary.capabilities)
    assert "cpus" in primary.resources and "memory" in primary.resources
    # The summary fields are the same as without detail.
    summary = {q.id: q for q in (await client.list_profiles()).items}
    for pid, q in by_id.items():
        assert (q.image, q.resources, q.capabilities, q.idle_timeout) == (
            summary[pid].image,
            summary[pid].resources,
            summary[pid].capabilities,
            summary[pid].idle_timeout,
        )
