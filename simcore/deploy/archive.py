"""Safe extraction of ML model archives (tar, tar.gz/bz2/xz, zip) and checked copies of model folders.

An archive is checked member by member before anything is written, and extracted into a temporary
folder next to the destination that is renamed into place only when every member is out, so a refused
or broken archive leaves nothing behind. Refused, with a message naming the member:
- names that are empty, absolute (`/x`, `C:\\x`), hold a `..` component, a backslash or a NUL byte;
- symbolic links whose target is absolute or leaves the tree; hard links to anything but an earlier
  regular file; members that sit below a symbolic link of the same archive;
- device files, FIFOs and other special files;
- duplicate names (except a folder listed twice), zip entries whose data overlap (the overlapping-file
  zip bomb);
- more than `max_members` members, a member above `max_member_bytes`, a total above `max_total_bytes`
  (uncompressed, as the headers declare it and as actually written), and zip members larger than
  `ratio_floor_bytes` whose compression ratio exceeds `max_ratio` (a zip bomb).
Tar members are then extracted with tarfile's `filter='data'`, which re-checks every path against the
folder as it is on disk while extracting.

Default limits (`ExtractionLimits()`): 10,000 members, 1 GiB per member, 2 GiB in total, ratio 200
for members above 1 MiB. A model for a Greengrass core is far below all of them. A function's code is held
to AWS Lambda's 250 MB unzipped (`simcore.deploy.deployment.CODE_LIMITS`).

The archive itself must be a regular file: a FIFO, a device (`/dev/zero`) or a socket is refused before it is
opened, and the open does not wait (`open_regular_file`). Folders (`copy_folder`, for model folders and code
folders) follow the same rules, and their sizes are counted on the bytes as they are copied, so a copy stops
at the limit rather than finding it passed afterwards.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from simcore.errors import DeployError

MiB = 1024 * 1024
GiB = 1024 * MiB
_COPY_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class ExtractionLimits:
    """How much an archive may hold; see the module docstring for the defaults."""

    max_members: int = 10_000
    max_member_bytes: int = 1 * GiB
    max_total_bytes: int = 2 * GiB
    max_ratio: int = 200
    ratio_floor_bytes: int = 1 * MiB
    # Whose limit `max_total_bytes` is, said in the refusal (AWS Lambda's for function code).
    total_limit: str = ""


DEFAULT_LIMITS = ExtractionLimits()


@dataclass(frozen=True)
class ExtractionResult:
    """What an extraction wrote: regular files and their total size in bytes."""

    files: int
    total_bytes: int


def open_regular_file(path: Path) -> BinaryIO:
    """`path` opened for reading when it is a regular file; DeployError for a FIFO, a device or a socket.

    Checked before the open (opening a FIFO waits for a writer; `/dev/zero` never ends) and again on the open
    file, which is opened without waiting (O_NONBLOCK), so a path swapped in between cannot get through either.
    """
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise DeployError(f"{path} is not a regular file (a FIFO, device or socket?)", location=str(path))
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        raise DeployError(f"cannot read {path}: {error.strerror}", location=str(path)) from None
    stream = os.fdopen(descriptor, "rb")
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        stream.close()
        raise DeployError(f"{path} is not a regular file", location=str(path))
    os.set_blocking(descriptor, True)
    return stream


def archive_format(path: Path) -> str | None:
    """ "zip", "tar" (plain or compressed) or None, from the file's content rather than its name."""
    with open_regular_file(path) as stream:
        return _stream_format(stream)


def _stream_format(stream: BinaryIO) -> str | None:
    stream.seek(0)
    magic = stream.read(6)
    stream.seek(0)
    if magic[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if magic[:2] == b"\x1f\x8b" or magic[:3] == b"BZh" or magic == b"\xfd7zXZ\x00":
        return "tar"
    try:
        with tarfile.open(fileobj=stream, mode="r:"):
            return "tar"
    except (tarfile.TarError, OSError, EOFError):
        return None
    finally:
        stream.seek(0)


def extract_archive(archive: Path, destination: Path, limits: ExtractionLimits = DEFAULT_LIMITS) -> ExtractionResult:
    """Extract `archive` (tar or zip) into `destination`, which must not exist yet."""
    archive = Path(archive)
    destination = Path(destination)
    if destination.exists():
        raise DeployError(f"extraction destination already exists: {destination}")
    with open_regular_file(archive) as stream:
        kind = _stream_format(stream)
        if kind is None:
            raise DeployError(f"{archive.name} is not a tar or zip archive", location=str(archive))
        destination.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", dir=destination.parent))
        try:
            if kind == "tar":
                result = _extract_tar(archive, stream, staging, limits)
            else:
                result = _extract_zip(archive, stream, staging, limits)
            os.chmod(staging, 0o755)  # mkdtemp made it 0700; functions running as other users must read it
            os.replace(staging, destination)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return result


def _refuse(archive: Path, member: str, why: str) -> DeployError:
    return DeployError(f"archive member {member!r}: {why}", location=str(archive))


def check_member_name(name: str) -> str | None:
    """Why `name` may not be extracted, or None when it is a plain relative path."""
    if not name:
        return "empty name"
    if "\x00" in name:
        return "NUL byte in name"
    if "\\" in name:
        return "backslash in name (ambiguous path separator)"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    if ".." in name.split("/"):
        return "path traversal ('..')"
    return None


def check_link_target(name: str, target: str, symlinks: set[str]) -> str | None:
    """Why the symlink `name` -> `target` is refused, or None.

    The target is walked component by component from the link's folder, as the kernel would: it may not
    climb above the tree, and may not pass through any symlink of the archive (whatever order they are
    extracted in), which also rules out loops and links to links.
    """
    if not target or target.startswith("/") or "\\" in target or "\x00" in target:
        return f"symbolic link to {target!r} leaves the archive's tree"
    stack = name.split("/")[:-1]
    for component in target.split("/"):
        if component in ("", "."):
            continue
        if component == "..":
            if not stack:
                return f"symbolic link to {target!r} leaves the archive's tree"
            stack.pop()
            continue
        stack.append(component)
        if "/".join(stack) in symlinks:
            return f"symbolic link to {target!r} passes through the symbolic link {'/'.join(stack)!r}"
    return None


def _under_symlink(name: str, symlinks: set[str]) -> str | None:
    parts = name.rstrip("/").split("/")
    for depth in range(1, len(parts)):
        ancestor = "/".join(parts[:depth])
        if ancestor in symlinks:
            return ancestor
    return None


def _normal(name: str) -> str:
    return posixpath.normpath(name)


def _checked_name(archive: Path, raw_name: str, is_dir: bool) -> str:
    """A member's normalised name; DeployError when the name is unsafe or names the extraction folder itself."""
    problem = check_member_name(raw_name)
    if problem:
        raise _refuse(archive, raw_name, problem)
    name = _normal(raw_name)
    if name == "." and not is_dir:
        raise _refuse(archive, raw_name, "names the extraction folder itself")
    return name


class _SizeBudget:
    """The bytes an archive may expand to: per member and in all, counted as members are checked."""

    def __init__(self, archive: Path, limits: ExtractionLimits):
        self.archive = archive
        self.limits = limits
        self.total = 0

    def take(self, member_name: str, size: int) -> None:
        """Count one member's size; DeployError naming it when it breaks either limit."""
        if size > self.limits.max_member_bytes:
            raise _refuse(self.archive, member_name, _beyond_member(self.limits, f"{size} bytes"))
        self.total += size
        if self.total > self.limits.max_total_bytes:
            raise _refuse(self.archive, member_name, _beyond_total(self.limits, "archive expands"))


def _beyond_member(limits: ExtractionLimits, what: str) -> str:
    # A member limit as large as the total is the same limit (code: AWS Lambda's), so it is named the same way.
    same_limit = limits.total_limit and limits.max_member_bytes >= limits.max_total_bytes
    whose = f": {limits.total_limit}" if same_limit else ""
    return f"{what}, above the {limits.max_member_bytes}-byte limit{whose}"


def _beyond_total(limits: ExtractionLimits, what: str) -> str:
    whose = f": {limits.total_limit}" if limits.total_limit else ""
    return f"{what} beyond {limits.max_total_bytes} bytes{whose}"


def _extract_tar(archive: Path, stream: BinaryIO, staging: Path, limits: ExtractionLimits) -> ExtractionResult:
    try:
        with tarfile.open(fileobj=stream, mode="r:*") as tar:
            members = _checked_tar_members(archive, tar, limits)
            try:
                tar.extractall(staging, members=members, filter="data")
            except tarfile.FilterError as error:
                raise DeployError(f"archive refused by tarfile's data filter: {error}", location=str(archive)) from None
            except (tarfile.TarError, EOFError, OSError, RecursionError) as error:
                raise DeployError(f"cannot extract tar archive: {error}", location=str(archive)) from None
    except (tarfile.TarError, EOFError, OSError) as error:
        raise DeployError(f"cannot read tar archive: {error}", location=str(archive)) from None
    files = [member for member in members if member.isreg()]
    return ExtractionResult(files=len(files), total_bytes=sum(member.size for member in files))


def _checked_tar_members(archive: Path, tar: tarfile.TarFile, limits: ExtractionLimits) -> list[tarfile.TarInfo]:
    members: list[tarfile.TarInfo] = []
    regular_files: set[str] = set()
    symlinks: set[str] = set()
    directories: set[str] = set()
    hard_links: set[str] = set()
    budget = _SizeBudget(archive, limits)
    for member in tar:  # lazily: stop before reading past a member that breaks a limit
        if len(members) >= limits.max_members:
            raise _refuse(archive, member.name, f"more than {limits.max_members} members")
        name = _checked_name(archive, member.name, member.isdir())
        # A later member replacing an earlier one (a file by a link, a link by a file) is how several
        # tar attacks start; the same folder listed twice is harmless and common.
        replaces = name in regular_files or name in symlinks or name in hard_links
        if replaces or (name in directories and not member.isdir()):
            raise _refuse(archive, member.name, "duplicate entry")
        if member.isdir():
            directories.add(name)
        if member.issym():
            symlinks.add(name)
        elif member.islnk():
            target = _normal(member.linkname) if not check_member_name(member.linkname) else None
            if target is None or target not in regular_files:
                raise _refuse(
                    archive,
                    member.name,
                    f"hard link to {member.linkname!r}, which is not an earlier regular file",
                )
            hard_links.add(name)
        elif member.isreg():
            budget.take(member.name, member.size)
            regular_files.add(name)
        elif not member.isdir():
            raise _refuse(archive, member.name, "device file, FIFO or other special file")
        # Extract under the very names that were checked ("a/./b/." is written as "a/b").
        member.name = name
        if member.islnk():
            member.linkname = _normal(member.linkname)
        members.append(member)
    _check_tar_links(archive, members, symlinks)
    return members


def _check_tar_links(archive: Path, members: list[tarfile.TarInfo], symlinks: set[str]) -> None:
    """Refuse a member below a symbolic link of the archive, and a link whose target `check_link_target` refuses."""
    for member in members:
        ancestor = _under_symlink(_normal(member.name), symlinks)
        if ancestor:
            raise _refuse(archive, member.name, f"lies below the symbolic link {ancestor!r}")
        problem = check_link_target(_normal(member.name), member.linkname, symlinks) if member.issym() else None
        if problem:
            raise _refuse(archive, member.name, problem)


def _zip_name_length(info: zipfile.ZipInfo) -> int:
    encoding = "utf-8" if info.flag_bits & 0x800 else "cp437"
    try:
        return len(info.orig_filename.encode(encoding))
    except UnicodeEncodeError:
        return len(info.orig_filename.encode("utf-8"))


def _extract_zip(archive: Path, stream: BinaryIO, staging: Path, limits: ExtractionLimits) -> ExtractionResult:
    try:
        with zipfile.ZipFile(stream) as zipped:
            infos = zipped.infolist()
            link_targets = _check_zip_members(archive, zipped, infos, limits)
            return _write_zip_members(archive, zipped, infos, link_targets, staging, limits)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as error:
        raise DeployError(f"cannot read zip archive: {error}", location=str(archive)) from None


def _check_zip_members(
    archive: Path, zipped: zipfile.ZipFile, infos: list[zipfile.ZipInfo], limits: ExtractionLimits
) -> dict[str, str]:
    """Check every entry before anything is written; returns the symlinks' targets by entry name."""
    if len(infos) > limits.max_members:
        raise _refuse(archive, infos[limits.max_members].filename, f"more than {limits.max_members} members")
    names: set[str] = set()
    symlinks: set[str] = set()
    budget = _SizeBudget(archive, limits)
    for info in infos:
        name = _check_zip_entry(archive, info, names)
        names.add(name)
        if stat.S_ISLNK(stat.S_IFMT(info.external_attr >> 16)):
            symlinks.add(name)
        budget.take(info.filename, info.file_size)
        if info.file_size > limits.ratio_floor_bytes and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            raise _refuse(
                archive,
                info.filename,
                f"compression ratio {info.file_size // max(info.compress_size, 1)}:1 "
                f"exceeds {limits.max_ratio}:1 "
                "(a zip bomb)",
            )
    _check_zip_overlaps(archive, infos)
    return _zip_link_targets(archive, zipped, infos, symlinks)


def _check_zip_entry(archive: Path, info: zipfile.ZipInfo, earlier_names: set[str]) -> str:
    """Refuse an entry whose name or type is unsafe (or repeats an earlier name); its normalised name."""
    # ZipInfo.is_dir() fails on an empty name; the name check must see that name first.
    name = _checked_name(archive, info.filename, info.filename.endswith("/"))
    if name in earlier_names:
        raise _refuse(archive, info.filename, "duplicate entry")
    file_type = stat.S_IFMT(info.external_attr >> 16)
    if not stat.S_ISLNK(file_type) and file_type not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise _refuse(archive, info.filename, "device file, FIFO or other special file")
    return name


def _check_zip_overlaps(archive: Path, infos: list[zipfile.ZipInfo]) -> None:
    """Refuse entries whose data overlap (one compressed stream read as many files: a zip bomb)."""
    ordered = sorted(infos, key=lambda item: item.header_offset)
    for current, following in zip(ordered, ordered[1:], strict=False):
        end = current.header_offset + 30 + _zip_name_length(current) + current.compress_size
        if end > following.header_offset:
            raise _refuse(archive, following.filename, "its data overlaps another entry's (a zip bomb)")


def _zip_link_targets(
    archive: Path, zipped: zipfile.ZipFile, infos: list[zipfile.ZipInfo], symlinks: set[str]
) -> dict[str, str]:
    """The symlinks' targets by entry name; refuses an entry below a symlink, and a link whose target
    `check_link_target` refuses."""
    link_targets: dict[str, str] = {}
    for info in infos:
        name = _normal(info.filename)
        ancestor = _under_symlink(name, symlinks)
        if ancestor:
            raise _refuse(archive, info.filename, f"lies below the symbolic link {ancestor!r}")
        if name in symlinks:
            if info.file_size > 4096:
                raise _refuse(archive, info.filename, "symbolic link target longer than 4096 bytes")
            link_targets[name] = zipped.read(info).decode("utf-8", errors="replace")
            problem = check_link_target(name, link_targets[name], symlinks)
            if problem:
                raise _refuse(archive, info.filename, problem)
    return link_targets


def _write_zip_members(
    archive: Path,
    zipped: zipfile.ZipFile,
    infos: list[zipfile.ZipInfo],
    link_targets: dict[str, str],
    staging: Path,
    limits: ExtractionLimits,
) -> ExtractionResult:
    files = 0
    total = 0
    for info in infos:
        name = _normal(info.filename)
        target = staging / name
        if info.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if name in link_targets:
            os.symlink(link_targets[name], target)
            continue
        written = 0
        with zipped.open(info) as stream, open(target, "xb") as output:
            while chunk := stream.read(_COPY_CHUNK):
                written += len(chunk)
                # The central directory may lie about sizes: count what is really written.
                if written > info.file_size:
                    raise _refuse(archive, info.filename, "expands beyond its declared size")
                if total + written > limits.max_total_bytes:
                    raise _refuse(archive, info.filename, _beyond_total(limits, "archive expands"))
                output.write(chunk)
        mode = (info.external_attr >> 16) & 0o777
        os.chmod(target, 0o755 if mode & 0o100 else 0o644)
        files += 1
        total += written
    return ExtractionResult(files=files, total_bytes=total)


def copy_folder(
    source: Path,
    destination: Path,
    limits: ExtractionLimits = DEFAULT_LIMITS,
    *,
    ignore: Callable[[str, list[str]], set[str]] | None = None,
) -> ExtractionResult:
    """Copy a folder with the archive rules: no links out of it, no special files, the same limits.

    Sizes are counted on the bytes as they are copied, so the copy stops at the limit (a file that grows
    while it is read, a tree far larger than allowed), not after it. `ignore` is `shutil.ignore_patterns`'s kind.
    """
    source = Path(source).resolve()
    destination = Path(destination)
    if destination.exists():
        raise DeployError(f"copy destination already exists: {destination}")
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", dir=destination.parent))
    copied = _FolderCopy(source, staging, limits)
    try:
        for folder, directory_names, file_names in os.walk(source):
            ignored = ignore(folder, directory_names + file_names) if ignore else set()
            directory_names[:] = [name for name in directory_names if name not in ignored]
            relative_folder = Path(folder).relative_to(source)
            for entry_name in sorted(set(directory_names + file_names) - ignored):
                copied.entry(Path(folder) / entry_name, (relative_folder / entry_name).as_posix())
        os.chmod(staging, 0o755)
        os.replace(staging, destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ExtractionResult(files=copied.files, total_bytes=copied.total)


def copy_model_folder(source: Path, destination: Path, limits: ExtractionLimits = DEFAULT_LIMITS) -> ExtractionResult:
    """A model folder copied by `copy_folder`'s rules."""
    return copy_folder(source, destination, limits)


class _FolderCopy:
    """One folder copy in progress: what it has written so far, checked against the limits as it goes."""

    def __init__(self, source: Path, staging: Path, limits: ExtractionLimits):
        self.source, self.staging, self.limits = source, staging, limits
        self.files = 0
        self.entries = 0
        self.total = 0

    def _refuse(self, relative: str, why: str) -> DeployError:
        return DeployError(f"{relative!r} in {self.source}: {why}", location=str(self.source / relative))

    def entry(self, entry: Path, relative: str) -> None:
        """Copy one folder entry (a folder, a file or a link inside the tree); refuse anything else."""
        self.entries += 1
        if self.entries > self.limits.max_members:
            raise self._refuse(relative, f"more than {self.limits.max_members} members")
        target = self.staging / relative
        entry_stat = entry.lstat()
        if stat.S_ISLNK(entry_stat.st_mode):
            link = os.readlink(entry)
            resolved = os.path.realpath(entry)
            if os.path.isabs(link) or os.path.commonpath([str(self.source), resolved]) != str(self.source):
                raise self._refuse(relative, f"symbolic link to {link!r} leaves the folder")
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(link, target)
        elif stat.S_ISDIR(entry_stat.st_mode):
            target.mkdir(parents=True, exist_ok=True)
        elif stat.S_ISREG(entry_stat.st_mode):
            target.parent.mkdir(parents=True, exist_ok=True)
            self._copy_file(entry, target, relative)
            shutil.copystat(entry, target)
            self.files += 1
        else:
            raise self._refuse(relative, "device file, FIFO or other special file")

    def _copy_file(self, entry: Path, target: Path, relative: str) -> None:
        written = 0
        with open_regular_file(entry) as stream, open(target, "xb") as output:
            while chunk := stream.read(_COPY_CHUNK):
                written += len(chunk)
                self.total += len(chunk)
                if written > self.limits.max_member_bytes:
                    raise self._refuse(relative, _beyond_member(self.limits, f"over {written - len(chunk)} bytes"))
                if self.total > self.limits.max_total_bytes:
                    raise self._refuse(relative, _beyond_total(self.limits, "the folder holds"))
                output.write(chunk)
