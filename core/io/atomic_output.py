"""Outputs a crash cannot corrupt: every file and folder is written under a temporary name beside
its target and renamed into place only once complete.

Why: a killed run, or one that filled the disk, used to leave a truncated ``LINES.csv`` at the
name the user asked for, which a downstream job then read as the result. A rename within one
folder is atomic (POSIX ``rename``), so a reader sees the previous file, or none, or the complete
new one. Where the data matters (checkpoints, feedback) the content and the folder entry are
fsynced first, so a power cut cannot leave a renamed but empty file either.

Temporary names are ``.<target name>.tmp-<pid>-<random>`` in the target's folder: hidden, tied to
the target, and carrying the writer's pid, so the next run removes the leftovers of a writer that
is gone (``clean_stale_temps``) and never those of one still running.

Write failures (disk full, read-only folder, quota, a folder that vanished, the file-size limit)
become ``OutputWriteError``: a user error naming the target, not a bug report.
"""
from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from tinylogbert.errors import OutputError

TEMP_MARK = ".tmp-"
_TEMP_PID = re.compile(r"\.tmp-(\d+)-[0-9a-f]+$")

# Errors that only ever come from writing: reported as write errors wherever they arise in a write.
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}
# Errors that also come from reading: reported as write errors only from this module's own steps
# (creating the temporary file, renaming it), where they can only concern the output.
_PATH_ERRNOS = {errno.EACCES, errno.EPERM, errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EIO}
_REASONS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file size limit reached (ulimit -f)",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOENT: "the output folder no longer exists",
    errno.ENOTDIR: "a part of the path is not a folder",
    errno.EISDIR: "the target is a folder",
    errno.EIO: "input/output error",
}


class OutputWriteError(OutputError):
    """Writing an output failed for a reason of the file system, not of the program; ``path`` is
    the target the user named and ``errno`` the operating system's error number."""

    def __init__(self, path: str | Path, err: int | None, detail: str = "",
                 what: str = "") -> None:
        self.path = str(path)
        self.errno = err
        reason = _REASONS.get(err or -1) or detail or "write failed"
        super().__init__(f"{reason} while writing {what or self.path}")


def error_number(exc: BaseException) -> int | None:
    """The errno of an OSError, also for libraries that only put it in the message (pyarrow:
    '[errno 28]'; safetensors, a SafetensorError: '(os error 28)')."""
    if isinstance(exc, OSError) and exc.errno:
        return exc.errno
    found = re.search(r"\[errno (\d+)\]|\(os error (\d+)\)", str(exc), re.IGNORECASE)
    return int(found.group(1) or found.group(2)) if found else None


def as_write_error(exc: BaseException, target: str | Path, own_step: bool = False,
                   what: str = "") -> OutputWriteError | None:
    """``exc`` as an ``OutputWriteError`` for ``target`` when it is a file-system write failure;
    ``own_step``: it came from this module's create / rename, so path errors count too."""
    if isinstance(exc, OutputWriteError):
        return exc
    if not isinstance(exc, Exception):
        return None
    err = error_number(exc)
    # Path errors only from an OSError of this module's own steps; the disk's from any writer.
    if err in _WRITE_ERRNOS or (own_step and isinstance(exc, OSError) and err in _PATH_ERRNOS):
        return OutputWriteError(target, err, " ".join(str(exc).split()), what)
    return None


@contextmanager
def write_errors(target: str | Path, what: str = "") -> Iterator[None]:
    """Name ``target`` in the write failures of the block (when one run writes several files,
    each write says which one failed; ``what`` describes a file the user did not name)."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 -- only write failures are turned into user errors
        found = as_write_error(exc, target, what=what)
        if found is None:
            raise
        raise found from None


def temp_path(target: str | Path) -> Path:
    """A fresh temporary name beside ``target`` (same folder, so the rename is atomic)."""
    target = Path(target)
    return target.with_name(f".{target.name}{TEMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")


def is_temp(path: str | Path) -> bool:
    """Whether ``path`` is one of these temporaries (left out of copies and archives)."""
    return bool(_TEMP_PID.search(Path(path).name)) and Path(path).name.startswith(".")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def clean_stale_temps(target: str | Path) -> list[Path]:
    """Remove what killed writers of ``target`` left beside it (their pid is gone); returns them."""
    target = Path(target)
    removed: list[Path] = []
    try:
        candidates = list(target.parent.glob(f".{glob_escape(target.name)}{TEMP_MARK}*"))
    except OSError:
        return removed
    for path in candidates:
        found = _TEMP_PID.search(path.name)
        if not found or _pid_alive(int(found.group(1))):
            continue
        _remove(path)
        removed.append(path)
    return removed


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def _remove(path: Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    except OSError:
        pass


def fsync_file(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_folder(path: str | Path) -> None:
    """Make a rename or a new entry in ``path`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_file(target: str | Path, durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write ``target``'s content to; on success it replaces ``target``
    (fsynced first when ``durable``), on any failure it is removed and ``target`` is untouched.
    File-system write failures leave as ``OutputWriteError``."""
    target = Path(target)
    clean_stale_temps(target)
    partial = temp_path(target)
    try:
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as exc:
        raise (as_write_error(exc, target, own_step=True) or exc) from None
    committed = False
    try:
        yield partial
        if durable:
            fsync_file(partial)
        try:
            os.replace(partial, target)
        except OSError as exc:
            raise (as_write_error(exc, target, own_step=True) or exc) from None
        committed = True
        if durable:
            fsync_folder(target.parent)
    except Exception as exc:  # noqa: BLE001 -- only write failures are turned into user errors
        found = as_write_error(exc, target)
        if found is None:
            raise
        raise found from None
    finally:
        if not committed:
            partial.unlink(missing_ok=True)


@contextmanager
def atomic_files(*targets: str | Path | None, durable: bool = False
                 ) -> Iterator[list[Path | None]]:
    """``atomic_file`` for several outputs of one run (None: not wanted, yields None): all are
    renamed into place once the block has written every one, none if it fails."""
    with ExitStack() as stack:
        yield [None if t is None else stack.enter_context(atomic_file(t, durable))
               for t in targets]


def temp_folder(target: str | Path) -> Path:
    """A new, empty working folder named like a temporary of ``target`` (so the next run's
    ``clean_stale_temps(target)`` removes it if this process is killed)."""
    target = Path(target)
    clean_stale_temps(target)
    folder = temp_path(target)
    try:
        folder.mkdir()
    except OSError as exc:
        raise (as_write_error(exc, folder, own_step=True) or exc) from None
    return folder


def write_bytes(target: str | Path, data: bytes, durable: bool = False) -> Path:
    """``target``'s content, written atomically (see ``atomic_file``)."""
    with atomic_file(target, durable) as partial:
        partial.write_bytes(data)
    return Path(target)


def write_text(target: str | Path, text: str, durable: bool = False) -> Path:
    return write_bytes(target, text.encode("utf-8"), durable)


@contextmanager
def atomic_folder(target: str | Path, durable: bool = True) -> Iterator[Path]:
    """Yield a new temporary folder to build ``target`` in; on success it takes ``target``'s place
    (an earlier folder there is moved aside, then removed), on failure it is removed and
    ``target`` is untouched. ``durable``: every file is fsynced before the rename."""
    target = Path(target)
    clean_stale_temps(target)
    building = temp_path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        building.mkdir()
    except OSError as exc:
        raise (as_write_error(exc, target, own_step=True) or exc) from None
    committed = False
    try:
        yield building
        if durable:
            for path in building.iterdir():
                if path.is_file():
                    fsync_file(path)
            fsync_folder(building)
        try:
            _swap_in(building, target)
        except OSError as exc:
            raise (as_write_error(exc, target, own_step=True) or exc) from None
        committed = True
        if durable:
            fsync_folder(target.parent)
    except Exception as exc:  # noqa: BLE001 -- only write failures are turned into user errors
        found = as_write_error(exc, target)
        if found is None:
            raise
        raise found from None
    finally:
        if not committed:
            _remove(building)


def _swap_in(building: Path, target: Path) -> None:
    """Rename ``building`` to ``target``. A folder cannot be renamed over a non-empty one: on
    Linux the two are exchanged in one step (``renameat2(RENAME_EXCHANGE)``), so ``target``
    always names a complete folder, and the earlier one, now under the temporary name, is
    removed. Elsewhere the earlier folder is first renamed aside to ``.<name>.old-<pid>-<hex>``
    (never removed by ``clean_stale_temps``: a crash between the renames keeps it for the user)."""
    if not (target.is_dir() and not target.is_symlink()):
        os.replace(building, target)
        return
    if _exchange(building, target):
        _remove(building)  # the earlier folder
        return
    aside = target.with_name(f".{target.name}.old-{os.getpid()}-{secrets.token_hex(4)}")
    os.rename(target, aside)
    try:
        os.rename(building, target)
    except OSError:
        os.rename(aside, target)  # put the earlier folder back
        raise
    _remove(aside)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2``); False where that is not available."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):  # an old kernel or file system
        return False
    raise OSError(err, os.strerror(err), str(b))


def pending_temps(target: str | Path) -> list[Path]:
    """Temporaries of ``target`` whose writers are gone, newest first (``checkpoint.py`` finishes
    an update of its manifest that a kill interrupted from them)."""
    target = Path(target)
    try:
        found = [p for p in target.parent.glob(f".{glob_escape(target.name)}{TEMP_MARK}*")
                 if (m := _TEMP_PID.search(p.name)) and not _pid_alive(int(m.group(1)))]
        return sorted(found, key=lambda p: p.stat().st_mtime_ns, reverse=True)
    except OSError:
        return []
