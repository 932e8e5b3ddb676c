"""Keep freed tensor memory in the process instead of handing it back to the kernel after each step.

glibc's malloc serves large blocks with mmap and gives them back with munmap. TensorFlow on the CPU
allocates and frees every activation of every step, and with changing batch shapes (dynamic or bucketed
padding) its own pools do not help, so each step pays for freshly zeroed pages: in the 2-core quickstart
almost half of the training time went to page faults (sys time). Raising malloc's mmap and trim thresholds
keeps those blocks in its free lists, where the next step finds them.
"""
import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3
MIB = 1024 * 1024


def keep_freed_memory() -> bool:
    """Tune glibc's malloc for TensorFlow; True when applied, False elsewhere (macOS, musl: left as is)."""
    mallopt = _mallopt()
    if mallopt is None:
        return False
    # Older glibc caps the mmap threshold at 32 MiB on 64-bit machines: fall back to that.
    mmap_ok = mallopt(M_MMAP_THRESHOLD, 1024 * MIB) == 1 or mallopt(M_MMAP_THRESHOLD, 32 * MIB) == 1
    trim_ok = mallopt(M_TRIM_THRESHOLD, 2047 * MIB) == 1 and mallopt(M_TOP_PAD, 64 * MIB) == 1
    if not (mmap_ok and trim_ok):
        log.debug("mallopt refused some allocator settings (mmap %s, trim %s)", mmap_ok, trim_ok)
    return mmap_ok and trim_ok


def _mallopt():
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        return None
    if mallopt is not None:
        mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        mallopt.restype = ctypes.c_int
    return mallopt
