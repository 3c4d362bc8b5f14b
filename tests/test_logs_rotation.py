"""Log rotation: a log's files never exceed its Space, and the newest lines are the ones kept."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simcore.core.logs import LogWriter


def _total_bytes(writer: LogWriter) -> int:
    return sum(path.stat().st_size for path in writer.files())


def _all_lines_oldest_first(writer: LogWriter) -> list[str]:
    lines: list[str] = []
    for path in reversed(writer.files()):
        lines.extend(path.read_text().splitlines())
    return lines


def test_rotation_keeps_total_within_space_and_keeps_the_newest(tmp_path: Path) -> None:
    writer = LogWriter(tmp_path / "runtime.log", space_kb=4, segments=4)
    written = [f"line {index:05d} " + "x" * 50 for index in range(500)]
    for line in written:
        writer.write_line(line)
        assert _total_bytes(writer) <= 4 * 1024
    writer.close()
    kept = _all_lines_oldest_first(writer)
    assert [path.name for path in writer.files()] == ["runtime.log", "runtime.log.1", "runtime.log.2",
                                                       "runtime.log.3"]
    assert kept == written[-len(kept):]  # a contiguous tail, in order, newest last
    assert len(kept) * (len(written[0]) + 1) >= 3 * 1024  # at least three segments' worth of history


def test_a_single_segment_log_starts_over_when_full(tmp_path: Path) -> None:
    writer = LogWriter(tmp_path / "one.log", space_kb=1, segments=1)
    for index in range(100):
        writer.write_line(f"{index:03d}" + "y" * 40)
    writer.close()
    assert writer.files() == [tmp_path / "one.log"]
    lines = (tmp_path / "one.log").read_text().splitlines()
    assert lines[-1].startswith("099")
    assert (tmp_path / "one.log").stat().st_size <= 1024


def test_an_oversized_line_is_cut_and_says_so(tmp_path: Path) -> None:
    writer = LogWriter(tmp_path / "big.log", space_kb=1, segments=2)
    writer.write_line("é" * 2000)  # 4000 bytes of UTF-8, one segment is 512
    writer.close()
    data = (tmp_path / "big.log").read_bytes()
    assert len(data) <= 512
    text = data.decode("utf-8")  # the cut did not split a character
    assert text.startswith("é") and text.endswith(" bytes]\n")
    kept, said = text.split("...[truncated ")
    assert len(kept.encode()) + int(said.split(" bytes]")[0]) == 4000  # kept + what it says it cut


def test_an_existing_oversized_log_is_rotated_on_first_write(tmp_path: Path) -> None:
    (tmp_path / "old.log").write_text("z" * 5000 + "\n")
    writer = LogWriter(tmp_path / "old.log", space_kb=4, segments=2)
    writer.write_line("fresh")
    writer.close()
    assert (tmp_path / "old.log").read_text() == "fresh\n"
    assert (tmp_path / "old.log.1").stat().st_size == 5001  # history is kept until it ages out


def test_concurrent_writers_lose_no_line_and_interleave_whole_lines(tmp_path: Path) -> None:
    writer = LogWriter(tmp_path / "busy.log", space_kb=1024)
    per_thread = 500

    def write(tag: str) -> None:
        for index in range(per_thread):
            writer.write_line(f"{tag}-{index}")

    threads = [threading.Thread(target=write, args=(f"t{number}",)) for number in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.close()
    lines = (tmp_path / "busy.log").read_text().splitlines()
    assert sorted(lines) == sorted(f"t{n}-{i}" for n in range(4) for i in range(per_thread))
    for number in range(4):
        mine = [int(line.split("-")[1]) for line in lines if line.startswith(f"t{number}-")]
        assert mine == list(range(per_thread))


@settings(max_examples=40, deadline=None)
@given(
    lines=st.lists(st.text(min_size=0, max_size=300), min_size=1, max_size=60),
    space_kb=st.integers(min_value=1, max_value=3),
    segments=st.integers(min_value=1, max_value=5),
)
def test_space_is_never_exceeded(tmp_path_factory: pytest.TempPathFactory, lines: list[str], space_kb: int,
                                 segments: int) -> None:
    writer = LogWriter(tmp_path_factory.mktemp("prop") / "p.log", space_kb=space_kb, segments=segments)
    for line in lines:
        writer.write_line(line)
        assert _total_bytes(writer) <= space_kb * 1024
    writer.close()
    assert len(writer.files()) <= segments


@pytest.mark.parametrize(("space_kb", "segments"), [(0, 4), (4, 0)])
def test_bad_space_or_segments_are_refused(tmp_path: Path, space_kb: int, segments: int) -> None:
    with pytest.raises(ValueError, match="at least"):
        LogWriter(tmp_path / "x.log", space_kb=space_kb, segments=segments)
