"""Keep freed memory in the process instead of returning it to the kernel (glibc).

Every batch of 256 frames allocates and frees a few tensors of 4-8 MB (conv1's
output alone is 8 MB).  With glibc's defaults the freed top of the heap is
trimmed, so the next batch faults every page back in, page by page.  The
faults fall hardest on early exit, whose arithmetic is smallest (what they
cost: docs/performance.md, "Engine settings").

The settings are process-wide (mallopt) and cannot be undone: they keep up
to TRIM_THRESHOLD of free memory at the top of each heap for the rest of the
process.  So they are an explicit choice: EarlyExitEngine(keep_freed_memory=)
and the classifier block's keep_freed_memory parameter.  Elsewhere than
glibc this does nothing.
"""
import ctypes
import ctypes.util
import threading

#: Allocations up to this size come from the heap, not from their own mmap
#: (glibc's dynamic threshold would rise to 32 MB as well, but only after a
#: large block has been freed once, and trimming still undoes it).
MMAP_THRESHOLD = 32 << 20
#: Free memory at the top of a heap kept before it is returned to the kernel.
TRIM_THRESHOLD = 64 << 20
#: Extra memory a heap grows by, so that growth happens rarely.
TOP_PAD = 16 << 20

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3  # <malloc.h>
_lock = threading.Lock()
_applied = None


def keep_freed_memory():
    """Apply the settings once per process; True when glibc took them."""
    global _applied
    with _lock:
        if _applied is None:
            _applied = _mallopt_all()
        return _applied


def _mallopt_all():
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows)
        return False
    return all(mallopt(option, value) == 1 for option, value in (
        (_M_MMAP_THRESHOLD, MMAP_THRESHOLD), (_M_TRIM_THRESHOLD, TRIM_THRESHOLD), (_M_TOP_PAD, TOP_PAD)))
