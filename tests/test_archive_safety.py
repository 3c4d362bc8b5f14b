"""simcore.deploy.archive: hostile archives are refused and leave nothing behind; honest ones extract whole."""

from __future__ import annotations

import io
import json
import os
import re
import stat
import tarfile
import warnings
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simcore.deploy.archive import ExtractionLimits, check_member_name, copy_model_folder, extract_archive
from simcore.errors import DeployError

CORPUS = Path(__file__).parent / "corpus" / "archives"
EXPECTED = json.loads((CORPUS / "expected.json").read_text())


def test_every_corpus_archive_has_an_expectation_and_the_reverse():
    on_disk = {path.name for path in CORPUS.iterdir() if path.name not in ("expected.json", "generate.py")}
    assert on_disk == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_hostile_archive_is_refused_and_leaves_nothing(tmp_path, name):
    case = EXPECTED[name]
    limits = ExtractionLimits(**case.get("limits", {}))
    destination = tmp_path / "out" / "model"
    with pytest.raises(DeployError, match=re.escape(case["expect"])) as raised:
        extract_archive(CORPUS / name, destination, limits)
    assert case["expect"] in raised.value.message
    assert raised.value.location == str(CORPUS / name)
    assert not destination.exists()
    leftovers = list((tmp_path / "out").iterdir()) if (tmp_path / "out").exists() else []
    assert leftovers == []
    assert not (tmp_path / "evil.txt").exists()


def _tar_bytes(members, mode="w:gz") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        for name, data, fields in members:
            info = tarfile.TarInfo(name)
            for key, value in fields.items():
                setattr(info, key, value)
            if info.isreg():
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return buffer.getvalue()


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_honest_tar_extracts_with_links_inside_the_tree(tmp_path, mode):
    archive = tmp_path / "model.archive"
    archive.write_bytes(
        _tar_bytes(
            [
                ("./", b"", {"type": tarfile.DIRTYPE, "mode": 0o755}),
                ("./model.json", b'{"version": "1"}', {"mode": 0o644}),
                ("./saved_model/variables/data.bin", b"weights", {"mode": 0o600}),
                ("./current.json", b"", {"type": tarfile.SYMTYPE, "linkname": "model.json"}),
                ("./copy.json", b"", {"type": tarfile.LNKTYPE, "linkname": "./model.json"}),
            ],
            mode,
        )
    )
    result = extract_archive(archive, tmp_path / "model")
    model = tmp_path / "model"
    assert (model / "model.json").read_text() == '{"version": "1"}'
    assert (model / "saved_model" / "variables" / "data.bin").read_bytes() == b"weights"
    assert os.readlink(model / "current.json") == "model.json"
    assert (model / "copy.json").read_text() == '{"version": "1"}'
    assert result.files == 2
    assert result.total_bytes == len('{"version": "1"}') + len("weights")


def test_extracted_folder_is_readable_by_other_users(tmp_path):
    archive = tmp_path / "model.tar"
    archive.write_bytes(_tar_bytes([("model.json", b"{}", {"mode": 0o644})], "w"))
    extract_archive(archive, tmp_path / "model")
    assert stat.S_IMODE((tmp_path / "model").stat().st_mode) == 0o755


def test_honest_zip_extracts_and_keeps_the_executable_bit(tmp_path):
    archive = tmp_path / "model.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("model/", "")
        zipped.writestr("model/model.json", '{"v": 1}')
        run = zipfile.ZipInfo("model/run.sh")
        run.external_attr = (stat.S_IFREG | 0o755) << 16
        zipped.writestr(run, "#!/bin/sh\n")
        link = zipfile.ZipInfo("model/latest.json")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zipped.writestr(link, "model.json")
    result = extract_archive(archive, tmp_path / "out")
    assert (tmp_path / "out" / "model" / "model.json").read_text() == '{"v": 1}'
    assert os.access(tmp_path / "out" / "model" / "run.sh", os.X_OK)
    assert not os.access(tmp_path / "out" / "model" / "model.json", os.X_OK)
    assert (tmp_path / "out" / "model" / "latest.json").read_text() == '{"v": 1}'
    assert result.files == 2


def test_zip_member_that_expands_past_its_declared_size_is_stopped(tmp_path):
    archive = tmp_path / "liar.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zipped:
        zipped.writestr("a.bin", b"a" * 4096)
    data = bytearray(archive.read_bytes())
    central = data.index(b"PK\x01\x02")
    data[central + 24 : central + 28] = (16).to_bytes(4, "little")  # central directory claims 16 bytes
    archive.write_bytes(bytes(data))
    # zipfile reads no more than the declared size, so the CRC no longer matches.
    with pytest.raises(DeployError, match="Bad CRC-32|expands beyond its declared size"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_existing_destination_is_not_overwritten(tmp_path):
    archive = tmp_path / "model.tar"
    archive.write_bytes(_tar_bytes([("model.json", b"{}", {})], "w"))
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "keep.txt").write_text("mine")
    with pytest.raises(DeployError, match="already exists"):
        extract_archive(archive, tmp_path / "model")
    assert (tmp_path / "model" / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "empty name"),
        ("a\x00b", "NUL byte in name"),
        ("C:/x", "absolute path"),
        ("a/../../b", "path traversal ('..')"),
        ("model/weights.bin", None),
        ("./model.json", None),
    ],
)
def test_member_names(name, problem):
    assert check_member_name(name) == problem


def test_model_folder_copy_keeps_inner_links_and_refuses_outer_ones(tmp_path):
    source = tmp_path / "source"
    (source / "sub").mkdir(parents=True)
    (source / "model.json").write_text("{}")
    (source / "sub" / "alias.json").symlink_to("../model.json")
    result = copy_model_folder(source, tmp_path / "copy")
    assert (tmp_path / "copy" / "sub" / "alias.json").read_text() == "{}"
    assert result.files == 1
    (source / "escape").symlink_to("/etc/passwd")
    with pytest.raises(DeployError, match="symbolic link to '/etc/passwd' leaves the folder"):
        copy_model_folder(source, tmp_path / "copy2")
    assert not (tmp_path / "copy2").exists()


def test_model_folder_copy_refuses_fifos(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    os.mkfifo(source / "pipe")
    with pytest.raises(DeployError, match="device file, FIFO or other special file"):
        copy_model_folder(source, tmp_path / "copy")


_SEGMENTS = st.sampled_from(["a", "b", "..", ".", "", "/", "c.txt"])
_NAMES = st.lists(_SEGMENTS, min_size=1, max_size=4).map("/".join)
_MEMBERS = st.lists(
    st.tuples(st.sampled_from(["file", "dir", "symlink", "hardlink"]), _NAMES, _NAMES), min_size=1, max_size=6
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(members=_MEMBERS, archive_kind=st.sampled_from(["tar", "zip"]))
def test_whatever_an_archive_holds_nothing_lands_outside_the_destination(tmp_path_factory, members, archive_kind):
    base = tmp_path_factory.mktemp("prop")
    fields_by_kind = {
        "file": lambda target: {},
        "dir": lambda target: {"type": tarfile.DIRTYPE},
        "symlink": lambda target: {"type": tarfile.SYMTYPE, "linkname": target},
        "hardlink": lambda target: {"type": tarfile.LNKTYPE, "linkname": target},
    }
    archive = base / "archive.bin"
    if archive_kind == "tar":
        members_with_fields = [(name, b"x", fields_by_kind[kind](target)) for kind, name, target in members]
        archive.write_bytes(_tar_bytes(members_with_fields, "w"))
    else:
        with zipfile.ZipFile(archive, "w") as zipped, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # duplicate names are part of what is being tried
            for kind, name, target in members:
                info = zipfile.ZipInfo(name + "/" if kind == "dir" else name)
                info.external_attr = (stat.S_IFLNK | 0o777) << 16 if kind == "symlink" else 0
                zipped.writestr(info, target if kind == "symlink" else "x")
    destination = base / "out" / "model"
    try:
        extract_archive(archive, destination)
    except DeployError:
        assert not destination.exists()
    else:
        root = os.path.realpath(destination)
        for path in destination.rglob("*"):
            # realpath, not Path.resolve: an in-tree symlink loop is harmless and must not raise here.
            assert os.path.commonpath([root, os.path.realpath(path)]) == root, path
    assert {entry.name for entry in base.iterdir()} <= {"archive.bin", "out"}
    if (base / "out").exists():
        assert [entry.name for entry in (base / "out").iterdir()] in ([], ["model"])
