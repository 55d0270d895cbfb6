"""Writing what a user keeps (``--out`` files, run files, model dirs) so that it can be trusted.

Every file and directory dpokit writes goes through here:

* a regular file, or a path that does not exist yet, is written into a temporary file
  beside it, flushed to disk and renamed over it: a reader, or a process killed mid-write,
  never sees half a file;
* a symbolic link is followed: the file it points to is replaced, the link stays;
* anything else that exists (a FIFO, ``/dev/stdout``, a character device) is written
  through in place, never replaced;
* new files get the mode ``0666 & ~umask`` and new directories ``0777 & ~umask``, as
  ``open`` and ``mkdir`` would give (``tempfile``'s private 0600/0700 is not kept); a
  replaced file keeps its own mode;
* a log that grows a line at a time (the labels of `dpokit serve`) is appended, one
  ``write`` then ``fsync`` per call (:func:`append_jsonl`, :func:`append_bytes`); its reader repairs a torn last line;
* an OS error (a parent that is a file, no permission, a full disk) is a
  :class:`~dpokit.errors.DpokitError` naming the path and the cause, not a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Union

from dpokit.errors import DpokitError

PathLike = Union[str, Path]


def current_umask() -> int:
    """The process's umask (read from /proc where it can be, so no thread sees it change)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    return 0o666 & ~current_umask()


def dir_mode() -> int:
    return 0o777 & ~current_umask()


def os_error(path: PathLike, err: OSError, action: str = "cannot write") -> DpokitError:
    """One line naming the path and the cause, with what to do where that is clear."""
    cause = err.strerror or str(err)
    hints = {
        errno.ENOSPC: "free some disk space, or write somewhere else",
        errno.EDQUOT: "free some disk space, or write somewhere else",
        errno.EACCES: "choose a location you may write to, or fix its permissions",
        errno.EPERM: "choose a location you may write to, or fix its permissions",
        errno.EROFS: "the file system is read-only: write somewhere else",
        errno.ENOTDIR: "a part of the path is a file, not a directory: choose another path",
        errno.EISDIR: "the path is a directory: give a file name",
        errno.ENAMETOOLONG: "use a shorter path",
    }
    where = err.filename if err.filename else path
    return DpokitError(f"{where}: {action} ({cause})", hints.get(err.errno, "check the path"))


@contextlib.contextmanager
def os_errors(path: PathLike, action: str = "cannot write") -> Iterator[None]:
    """Turn an OSError raised inside the block into a :class:`DpokitError` about ``path``."""
    try:
        yield
    except DpokitError:
        raise
    except OSError as err:
        raise os_error(path, err, action) from None


def make_dirs(path: PathLike) -> Path:
    """``mkdir -p`` with the umask's mode and a one-line error."""
    path = Path(path)
    with os_errors(path, "cannot create the directory"):
        path.mkdir(parents=True, exist_ok=True)
    return path


def _is_special(path: Path) -> bool:
    """True for something that exists and is not a regular file (after following links)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def write_file(path: PathLike, data: Union[str, bytes]) -> Path:
    """Write ``data`` to ``path`` (see the module docstring for the rules); returns ``path``."""
    path = Path(path).expanduser()
    raw = data.encode("utf-8") if isinstance(data, str) else data
    with os_errors(path):
        if path.is_dir():
            raise DpokitError(f"{path}: is a directory", "give a file name")
        if _is_special(path):  # /dev/stdout, a FIFO: write through, never replace
            with open(path, "wb") as handle:
                handle.write(raw)
            return path
        target = Path(os.path.realpath(path))  # a symlink's target is what gets replaced
        make_dirs(target.parent)
        mode = stat.S_IMODE(target.stat().st_mode) if target.exists() else file_mode()
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(raw)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, mode)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return path


def write_json(path: PathLike, value: Any) -> Path:
    return write_file(path, json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def write_jsonl(path: PathLike, rows: Iterable[Any]) -> Path:
    """One JSON value per line (UTF-8, non-ASCII kept), written as one file."""
    return write_file(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def fsync_dir(path: PathLike) -> None:
    """Flush a directory's entries to disk (so a file just created in it survives a crash)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # not supported here (e.g. some network file systems): the data itself is synced
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def append_bytes(path: PathLike, data: bytes) -> Path:
    """Append ``data`` durably: ``write`` with O_APPEND, then ``fsync`` before returning.

    For logs that grow a line at a time (labels): the data is on disk when this returns; a
    process killed during the call leaves at most a torn last line, which the reader must
    detect. A new file gets the umask's mode and its directory entry is synced too.
    """
    path = Path(path).expanduser()
    with os_errors(path):
        created = not path.exists()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)  # the umask applies
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            fsync_dir(path.parent)
    return path


def append_jsonl(path: PathLike, rows: Iterable[Any]) -> Path:
    """Append one JSON line per row (UTF-8, non-ASCII kept) durably, in one write (see :func:`append_bytes`)."""
    data = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")
    return append_bytes(path, data)


def fix_tree_modes(root: PathLike) -> None:
    """Give ``root`` and everything in it the umask's modes (temp dirs and some writers use 0600/0700)."""
    root = Path(root)
    fmode, dmode = file_mode(), dir_mode()
    os.chmod(root, dmode)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            os.chmod(os.path.join(dirpath, name), dmode)
        for name in filenames:
            full = os.path.join(dirpath, name)
            if not os.path.islink(full):
                os.chmod(full, fmode)


@contextlib.contextmanager
def staged_dir(final: PathLike, *, replace: bool = False) -> Iterator[Path]:
    """A temporary dir beside ``final`` to fill; renamed to ``final`` when the block succeeds.

    ``final`` must not exist (or be empty) unless ``replace``, in which case the old one is
    removed only once the new one is complete. On an error the temp dir is removed and
    ``final`` is untouched. Modes follow the umask.
    """
    final = Path(final).expanduser()
    make_dirs(final.parent)
    with os_errors(final):
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield tmp
        with os_errors(final):
            fix_tree_modes(tmp)
            if final.is_dir() and any(final.iterdir()):
                if not replace:
                    raise DpokitError(f"{final}: exists and is not empty", "choose a new directory")
                old = final.with_name(f".{final.name}.old-{os.getpid()}")
                final.rename(old)
                tmp.rename(final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                if final.is_dir():
                    final.rmdir()
                tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_new_dir(path: PathLike, what: str = "output dir") -> Optional[Path]:
    """Refuse a path that is a file or a non-empty directory (nothing is ever overwritten)."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise DpokitError(f"{path}: {what} is a file", "choose a new directory")
    if path.is_dir() and any(path.iterdir()):
        raise DpokitError(f"{path}: {what} is not empty", "choose a new or empty directory")
    return path
