"""Process creation stays cheap (issue 20): a guest execve builds a new
machine, and on a busy host every page it commits is a page fault costing
microseconds, so a new machine must commit only the pages it uses: the
block cache's and the per-page arrays are fresh zero mappings in which
"empty" is 0 (emu/core/codecache.pxi), never memory cleared page by page."""
import resource

from emu import _core


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def test_a_new_machine_commits_few_pages():
    # a machine made and freed first: glibc then serves large callocs from
    # its heap (clearing them) instead of fresh mappings, the case execve meets
    _core.PhysMachine(4 << 30, "interp", None, None)
    before = _faults()
    m = _core.PhysMachine(4 << 30, "interp", None, None)
    committed = _faults() - before
    # 4 GiB of RAM: 1 MiB code map, 1 MiB dirty map, 4 MiB of per-page block
    # lists, a 1 MiB block hash, the block and uop arrays; filled with 0xff
    # and cleared by calloc as before, this was 470 page faults on the
    # development VM, and about a dozen now
    assert committed < 200, committed
    assert not m.is_code_page(0x1000)
