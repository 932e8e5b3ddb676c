"""qaexp.runtime.malloc: freed tensor-sized blocks stay in the process instead of costing fresh pages each step."""
import pytest

from helpers.cli import run_cli
from qaexp.runtime.malloc import _mallopt

PROBE = """
import ctypes, ctypes.util, resource, sys
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
if sys.argv[1] == "tuned":
    from qaexp.runtime.malloc import keep_freed_memory
    assert keep_freed_memory()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for step in range(40):
    size = 48_000_000 + step * 4096  # past the 32 MB glibc adapts to by itself; a new size each step
    block = libc.malloc(size)
    ctypes.memset(block, 1, size)  # touch every page, as a tensor's first write does
    libc.free(block)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(mode: str) -> int:
    done = run_cli(["-c", PROBE, mode], check=True)
    return int(done.stdout.strip())


@pytest.mark.skipif(_mallopt() is None, reason="no glibc mallopt on this platform")
def test_tuned_allocator_reuses_freed_blocks():
    default, tuned = page_faults("default"), page_faults("tuned")
    # Untuned, every 48 MB block is mmapped afresh: ~11,700 faults each. Tuned, the first one is reused.
    assert default > 40 * 10_000
    assert tuned < default / 5
