"""Writes the hostile archives in tests/corpus/archives and expected.json (the error each must give).

Run it after changing a case: `.venv/bin/python tests/corpus/archives/generate.py`. Archives are built
with tarfile/zipfile (and a few bytes patched by hand where those refuse to write the attack).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import stat
import tarfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIXED_TIME = 1_700_000_000


def tar_member(tar: tarfile.TarFile, name: str, data: bytes = b"data", **fields) -> None:
    info = tarfile.TarInfo(name)
    info.mtime = FIXED_TIME
    for key, value in fields.items():
        setattr(info, key, value)
    if info.type in (tarfile.REGTYPE, tarfile.AREGTYPE):
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    else:
        tar.addfile(info)


def write_tar(name: str, members: list[tuple], compression: str = "") -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member in members:
            tar_member(tar, *member[:2], **(member[2] if len(member) > 2 else {}))
    data = buffer.getvalue()
    if compression == "gz":
        data = gzip.compress(data, mtime=FIXED_TIME)
    (HERE / name).write_bytes(data)


def zip_member(zipped: zipfile.ZipFile, name: str, data: bytes = b"data", mode: int | None = None) -> None:
    info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    if mode is not None:
        info.external_attr = mode << 16
    zipped.writestr(info, data)


def write_zip(name: str, members: list[tuple]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        for member in members:
            zip_member(zipped, *member)
    (HERE / name).write_bytes(buffer.getvalue())
    return buffer.getvalue()


def huge_member_tar() -> None:
    """A header that claims 3 GiB with no data behind it: refused from the header, before any read."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("model/weights.bin")
        info.size = 3 * 1024**3
        info.mtime = FIXED_TIME
        tar.addfile(info)  # header only (Python 3.11 writes no data without a file object)
    (HERE / "huge_member.tar.gz").write_bytes(gzip.compress(buffer.getvalue(), mtime=FIXED_TIME))


def overlapping_zip() -> None:
    """Two central-directory entries pointing at one local entry: the overlapping-files zip bomb."""
    data = bytearray(write_zip("overlapping.zip", [("a.bin", b"x" * 1000), ("b.bin", b"y" * 1000)]))
    second = data.index(b"PK\x01\x02", data.index(b"PK\x01\x02") + 4)
    data[second + 42 : second + 46] = (0).to_bytes(4, "little")
    (HERE / "overlapping.zip").write_bytes(bytes(data))


CASES = {
    "traversal.tar": "path traversal ('..')",
    "traversal_nested.tar.gz": "path traversal ('..')",
    "absolute.tar": "absolute path",
    "symlink_absolute.tar": "symbolic link to '/etc/passwd' leaves the archive's tree",
    "symlink_relative_escape.tar": "symbolic link to '../../outside' leaves the archive's tree",
    "member_below_symlink.tar": "lies below the symbolic link 'sub'",
    "hardlink_outside.tar": "hard link to '/etc/passwd', which is not an earlier regular file",
    "hardlink_forward.tar": "hard link to 'later.txt', which is not an earlier regular file",
    "char_device.tar": "device file, FIFO or other special file",
    "fifo.tar": "device file, FIFO or other special file",
    "huge_member.tar.gz": "3221225472 bytes, above the 1073741824-byte limit",
    "too_many_members.tar": {"expect": "more than 5 members", "limits": {"max_members": 5}},
    "too_big_in_total.tar": {"expect": "archive expands beyond 1000 bytes", "limits": {"max_total_bytes": 1000}},
    "truncated.tar.gz": "cannot read tar archive",
    "not_an_archive.bin": "is not a tar or zip archive",
    "zip_traversal.zip": "path traversal ('..')",
    "zip_absolute.zip": "absolute path",
    "zip_backslash.zip": "backslash in name",
    "zip_duplicate.zip": "duplicate entry",
    "zip_symlink_escape.zip": "symbolic link to '/etc/passwd' leaves the archive's tree",
    "zip_char_device.zip": "device file, FIFO or other special file",
    "zip_bomb.zip": "exceeds 200:1 (a zip bomb)",
    "overlapping.zip": "its data overlaps another entry's (a zip bomb)",
}


def main() -> None:
    write_tar("traversal.tar", [("../evil.txt", b"x")])
    write_tar("traversal_nested.tar.gz", [("model/", b"", {"type": tarfile.DIRTYPE}), ("model/../../evil", b"x")], "gz")
    write_tar("absolute.tar", [("/etc/evil", b"x")])
    write_tar("symlink_absolute.tar", [("link", b"", {"type": tarfile.SYMTYPE, "linkname": "/etc/passwd"})])
    write_tar("symlink_relative_escape.tar", [("a/link", b"", {"type": tarfile.SYMTYPE, "linkname": "../../outside"})])
    write_tar(
        "member_below_symlink.tar",
        [
            ("real/", b"", {"type": tarfile.DIRTYPE}),
            ("sub", b"", {"type": tarfile.SYMTYPE, "linkname": "real"}),
            ("sub/file.txt", b"x"),
        ],
    )
    write_tar("hardlink_outside.tar", [("h", b"", {"type": tarfile.LNKTYPE, "linkname": "/etc/passwd"})])
    write_tar(
        "hardlink_forward.tar",
        [("h", b"", {"type": tarfile.LNKTYPE, "linkname": "later.txt"}), ("later.txt", b"x")],
    )
    write_tar("char_device.tar", [("null", b"", {"type": tarfile.CHRTYPE, "devmajor": 1, "devminor": 3})])
    write_tar("fifo.tar", [("pipe", b"", {"type": tarfile.FIFOTYPE})])
    huge_member_tar()
    write_tar("too_many_members.tar", [(f"file{index}.txt", b"x") for index in range(6)])
    write_tar("too_big_in_total.tar", [("a.bin", b"a" * 600), ("b.bin", b"b" * 600)])
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        noise = b"".join(hashlib.sha256(str(index).encode()).digest() for index in range(300))
        tar_member(tar, "weights.bin", noise)
    compressed = gzip.compress(buffer.getvalue(), mtime=FIXED_TIME)
    (HERE / "truncated.tar.gz").write_bytes(compressed[: len(compressed) // 2])
    (HERE / "not_an_archive.bin").write_bytes(b"this is a model, honest\n" * 20)
    write_zip("zip_traversal.zip", [("../evil.txt",)])
    write_zip("zip_absolute.zip", [("/etc/evil",)])
    write_zip("zip_backslash.zip", [("..\\evil.txt",)])
    write_zip("zip_duplicate.zip", [("model.json", b"{}"), ("model.json", b"{}")])
    write_zip("zip_symlink_escape.zip", [("link", b"/etc/passwd", stat.S_IFLNK | 0o777)])
    write_zip("zip_char_device.zip", [("null", b"", stat.S_IFCHR | 0o666)])
    write_zip("zip_bomb.zip", [("zeros.bin", bytes(20 * 1024 * 1024))])
    overlapping_zip()
    expected = {name: case if isinstance(case, dict) else {"expect": case} for name, case in CASES.items()}
    (HERE / "expected.json").write_text(json.dumps(expected, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
