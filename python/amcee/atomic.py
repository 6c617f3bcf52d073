"""Writing files so that a killed process or a full disk never leaves a
truncated or half-replaced file behind.

Every file the package writes for the user (model files, calibrated models,
recordings, metrics) is written to a temporary file in the same folder,
flushed and fsync'ed, then renamed over the target with os.replace: a
reader sees the old file or the new one, never a mix.  The temporary file
is in the same folder because a rename is only atomic within one file system.
"""
import contextlib
import os
import shutil
import tempfile


class FileExistsRefusal(FileExistsError):
    """A write that would replace an earlier file the user did not ask to replace."""


def refuse_existing(path, what="file", flag="--overwrite"):
    """Raise FileExistsRefusal when ``path`` exists: commands replace an earlier
    model, run or recording only when told so (``flag``)."""
    if os.path.exists(path):
        raise FileExistsRefusal(f"{what} {path} exists: give {flag} to replace it, or another path")


def _fsync_folder(folder):
    # The rename itself is durable only once the folder's entry is on disk.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path``; when the block ends without an
    exception, the file written there is fsync'ed and renamed over ``path``.
    On an exception the temporary file is removed and ``path`` is untouched.

    For writers that want a path (torch's save, numpy's tofile, SigMF)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    # The temporary file has the target's name, in a fresh hidden folder next
    # to it: writers that take the format from the extension (SigMF) or
    # record the file's name (torch's archive folder) see the final name.
    scratch = tempfile.mkdtemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    tmp = os.path.join(scratch, os.path.basename(path))
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        if os.path.exists(path):
            # Keep the permissions of the file being replaced.
            os.chmod(tmp, os.stat(path).st_mode & 0o7777)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    _fsync_folder(folder)


@contextlib.contextmanager
def atomic_open(path, mode="w", **kwargs):
    """Like open(path, mode) for writing, but the file appears at ``path``
    only complete (atomic_path).  ``mode`` is "w" or "wb"."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode must be 'w' or 'wb', got {mode!r}")
    with atomic_path(path) as tmp:
        with open(tmp, mode, **kwargs) as f:
            yield f
            f.flush()


def write_atomic(path, writer):
    """Call ``writer(tmp_path)`` and move what it wrote to ``path`` atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)
