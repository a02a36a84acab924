"""sandbox.filesystem: read_file/write_file/list_dir/delete/upload/download
(reference §1.4 Filesystem, §4.5 path validation)."""

from __future__ import annotations

import os

import pytest
from shipyard_neo import BayError, CargoFileNotFoundError, FileInfo, InvalidPathError, ShipError
from shipyard_neo.sandbox import Sandbox


async def test_write_and_read_text(sandbox: Sandbox) -> None:
    text = "line one\nünïcødé ✓ 🚢\n"
    await sandbox.filesystem.write_file("notes/hello.txt", text)  # parents are created
    assert await sandbox.filesystem.read_file("notes/hello.txt") == text
    # Overwrite.
    await sandbox.filesystem.write_file("notes/hello.txt", "short")
    assert await sandbox.filesystem.read_file("notes/hello.txt") == "short"
    # Empty file.
    await sandbox.filesystem.write_file("empty.txt", "")
    assert await sandbox.filesystem.read_file("empty.txt") == ""


async def test_written_file_is_visible_to_code(sandbox: Sandbox) -> None:
    await sandbox.filesystem.write_file("from-sdk.txt", "abc")
    r = await sandbox.shell.exec("cat /workspace/from-sdk.txt")
    assert r.output == "abc"


async def test_paths_are_normalized(sandbox: Sandbox) -> None:
    await sandbox.filesystem.write_file("norm/../normalized.txt", "n")
    assert await sandbox.filesystem.read_file("./normalized.txt") == "n"
    assert await sandbox.filesystem.read_file("norm//..//normalized.txt") == "n"


async def test_list_dir(sandbox: Sandbox) -> None:
    await sandbox.filesystem.write_file("listing/b.txt", "bb")
    await sandbox.filesystem.write_file("listing/A.txt", "a")
    await sandbox.filesystem.write_file("listing/zdir/inner.txt", "i")
    await sandbox.filesystem.write_file("listing/.hidden", "h")
    entries = await sandbox.filesystem.list_dir("listing")
    assert all(isinstance(e, FileInfo) for e in entries)
    # Directories first, then names case-insensitively; hidden files excluded.
    assert [e.name for e in entries] == ["zdir", "A.txt", "b.txt"]
    by_name = {e.name: e for e in entries}
    assert by_name["zdir"].is_dir and not by_name["b.txt"].is_dir
    assert by_name["b.txt"].size == 2
    assert by_name["b.txt"].path.endswith("listing/b.txt")

    root = {e.name: e for e in await sandbox.filesystem.list_dir()}  # default "."
    assert "listing" in root and root["listing"].is_dir


async def test_delete_file_and_directory(sandbox: Sandbox) -> None:
    await sandbox.filesystem.write_file("doomed/a.txt", "a")
    await sandbox.filesystem.write_file("doomed/deep/b.txt", "b")
    await sandbox.filesystem.delete("doomed/a.txt")
    names = [e.name for e in await sandbox.filesystem.list_dir("doomed")]
    assert names == ["deep"]
    await sandbox.filesystem.delete("doomed")  # recursive
    names = [e.name for e in await sandbox.filesystem.list_dir(".")]
    assert "doomed" not in names


async def test_upload_download_binary_round_trip(sandbox: Sandbox) -> None:
    blob = bytes(range(256)) * 64 + os.urandom(100_000) + b"\x00\xff\r\n"
    await sandbox.filesystem.upload("bin/data.bin", blob)
    assert await sandbox.filesystem.download("bin/data.bin") == blob
    r = await sandbox.shell.exec("stat -c %s bin/data.bin")
    assert int(r.output) == len(blob)
    # Text written through the API downloads as its UTF-8 bytes.
    await sandbox.filesystem.write_file("bin/t.txt", "é")
    assert await sandbox.filesystem.download("bin/t.txt") == "é".encode()
    # An upload overwrites.
    await sandbox.filesystem.upload("bin/data.bin", b"tiny")
    assert await sandbox.filesystem.download("bin/data.bin") == b"tiny"


async def test_download_missing_file(sandbox: Sandbox) -> None:
    with pytest.raises(CargoFileNotFoundError):
        await sandbox.filesystem.download("does/not/exist.bin")


async def test_read_missing_file(sandbox: Sandbox) -> None:
    # Shipyard Neo answers 502 ship_error here (reference §1.4); a precise
    # file_not_found is accepted as well.
    with pytest.raises((ShipError, CargoFileNotFoundError)):
        await sandbox.filesystem.read_file("does/not/exist.txt")


@pytest.mark.parametrize(
    "path,reason",
    [
        ("/etc/passwd", "absolute_path"),
        ("../outside.txt", "path_traversal"),
        ("a/../../outside.txt", "path_traversal"),
        ("", "empty_path"),
        ("bad\x00name", "null_byte"),
    ],
)
async def test_invalid_paths(sandbox: Sandbox, path: str, reason: str) -> None:
    fs = sandbox.filesystem
    calls = [
        ("read_file", lambda: fs.read_file(path)),
        ("write_file", lambda: fs.write_file(path, "x")),
        ("list_dir", lambda: fs.list_dir(path)),
        ("delete", lambda: fs.delete(path)),
        ("upload", lambda: fs.upload(path, b"x")),
        ("download", lambda: fs.download(path)),
    ]
    for name, call in calls:
        with pytest.raises(InvalidPathError) as e:
            await call()
        assert e.value.details.get("field") == "path", (name, e.value.details)
        assert e.value.details.get("reason") == reason, (name, e.value.details)


async def test_download_directory_is_an_error(sandbox: Sandbox) -> None:
    await sandbox.filesystem.write_file("adir/f.txt", "f")
    with pytest.raises(BayError):
        await sandbox.filesystem.download("adir")
