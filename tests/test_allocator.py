"""The allocator setting: a freed large block is reused without faulting its pages in again."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from actstore.allocator import is_glibc

# in a fresh process: malloc, touch and free 64 MB, then count the page faults of doing it again
CHILD = """
import ctypes, resource, sys
if sys.argv[1] == "retain":
    from actstore.allocator import retain_freed_memory
    assert retain_freed_memory()
elif sys.argv[1] == "cli":
    from actstore.cli import main
    try:
        main(["--help"])
    except SystemExit:
        pass
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes, libc.memset.argtypes = [ctypes.c_void_p], [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
size = 64 << 20
for touch in range(2):
    if touch:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = libc.malloc(size)
    libc.memset(block, 1, size)
    libc.free(block)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def huge_pages_always() -> bool:
    """Transparent huge pages for every mapping: a 64 MB block then faults in 2 MB pages, ~32 times."""
    try:
        return "[always]" in Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return False


glibc = pytest.mark.skipif(not is_glibc() or huge_pages_always(),
                           reason="the setting is glibc's (Linux); counted in 4 KiB pages (huge pages not always)")


def second_touch_faults(mode: str) -> int:
    """In a child without the environment's own malloc settings (MALLOC_*, GLIBC_TUNABLES)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUNABLES"))}
    out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True, env=env)
    return int(out.stdout.split()[-1])


@glibc
def test_glibc_default_faults_a_freed_large_block_in_again():
    """What the setting removes: by default the 64 MB block is unmapped on free and each page faults anew."""
    assert second_touch_faults("default") > (64 << 20) // 4096 // 2


@glibc
@pytest.mark.parametrize("mode", ["retain", "cli"])
def test_retained_block_is_reused_without_page_faults(mode):
    """After retain_freed_memory (also as the command line's entry point runs it) the block stays mapped."""
    assert second_touch_faults(mode) < 500
