"""Deceptive time: the instruction-class costs and the cache model
(core/timing.pxi) charge the virtual TSC, so a timing detector
(guests/antivm/timing) measures the template's real part under --profile
stealth, and sees the hypervisor under --profile transparent."""
import os
import re
import subprocess
import sys

import pytest

import emu
import emu as _emu_pkg
from emu.hypervisor import Guest, templates as T
from emu.hypervisor.deception import Deception

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMING = os.path.join(ROOT, "guests", "antivm", "timing")
EMU_PATH = os.path.dirname(os.path.dirname(os.path.abspath(_emu_pkg.__file__)))
FIGURES = ("div_add", "cpuid", "rdtsc", "dram_l1")


def emu_run(*args):
    env = dict(os.environ)
    env["PYTHONPATH"] = EMU_PATH + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "emu", "run", *args], capture_output=True, text=True,
                          timeout=120, cwd=os.path.dirname(ROOT), env=env)


def figures(out: str) -> dict:
    res = {}
    for m in re.finditer(r"^(\w+): (clean|DETECTED) \((\d+) in", out, re.M):
        res[m.group(1)] = (m.group(2), int(m.group(3)))
    assert sorted(res) == sorted(FIGURES), out
    return res


@pytest.mark.parametrize("name", [t for t in T.TEMPLATES if T.usable(T.TEMPLATES[t])])
def test_stealth_timing_is_the_real_parts(name):
    t = T.TEMPLATES[name]
    r = emu_run("--profile", "stealth", "--template", name, TIMING)
    res = figures(r.stdout)
    assert r.returncode == 0 and all(v[0] == "clean" for v in res.values()), r.stdout
    for fig, (lo, hi) in t.ranges.items():
        assert lo <= res[fig][1] <= hi, (fig, res[fig], t.ranges[fig])


def test_transparent_timing_is_seen():
    r = emu_run("--profile", "transparent", "--time", "virtual", TIMING)
    res = figures(r.stdout)
    assert all(v[0] == "DETECTED" for v in res.values()), r.stdout
    assert res["div_add"][1] < 30 and res["rdtsc"][1] < 10 and res["dram_l1"][1] <= 12   # every op one cycle
    assert r.returncode == 4
    r = emu_run("--profile", "transparent", TIMING)     # host time: a cached and a flushed line cost the same
    res = figures(r.stdout)
    assert res["dram_l1"][0] == "DETECTED" and r.returncode >= 1


def test_stealth_policy_tells_the_truth():
    """timing off in the policy: stealth's clock shows every instruction
    costing one cycle again (the detector sees it)."""
    import tempfile
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        f.write('{"timing": false}')
    try:
        r = emu_run("--profile", "stealth", "--policy", f.name, TIMING)
    finally:
        os.unlink(f.name)
    res = figures(r.stdout)
    assert res["cpuid"][0] == "DETECTED" and res["div_add"][0] == "DETECTED"


# ---- the core model, through the API ----

def _machine(code: bytes):
    m = emu.Machine(16 << 20)
    m.map(0x400000, 0x1000)
    m.map(0x600000, 0x10000)
    m.write(0x400000, code)
    return m


# rdtsc; mov r8, rax; mov eax, 1; xor edx, edx; mov ecx, 3; div ecx; rdtsc; sub rax, r8; ud2
DIV_CODE = bytes.fromhex("0f314989c0b80100000031d2b903000000f7f10f314c29c00f0b")
# mov rsi, 0x600040; mov rax, [rsi]; lfence; rdtsc; mov r8, rax; mov rbx, [rsi]; rdtsc; sub rax, r8; mov r9, rax;
# clflush [rsi]; rdtsc; mov r8, rax; mov rbx, [rsi]; rdtsc; sub rax, r8; ud2
CACHE_CODE = bytes.fromhex("48c7c640006000488b060faee80f314989c0488b1e0f314c29c04989c10fae3e0f314989c0488b1e0f31"
                           "4c29c00f0b")


def test_class_costs_charge_the_tsc():
    for costs, want in (({}, 6), ({"div32": 25, "rdtsc": 23}, 6 + 25 + 23), ({"div64": 99}, 6)):
        m = _machine(DIV_CODE)
        m.phys.set_class_costs(costs)
        v = m.vcpu
        v.set_tsc(1000, 1.0)
        v.set_timing(True)
        v.rip = 0x400000
        ex = v.run()
        assert ex.name == "EXCEPTION" and ex.vector == 6
        assert v.rax == want, costs
        assert v.tsc == 1000 + v.icount + v.tsc_extra
    with pytest.raises(ValueError):
        m.phys.set_class_costs({"fdiv": 3})


def test_cache_model_charges_misses():
    t = T.TEMPLATES["penryn-e8400"]
    m = _machine(CACHE_CODE)
    m.phys.set_class_costs({})
    m.phys.set_cache_model(t.cache_levels())
    v = m.vcpu
    v.set_tsc(0, 1.0)
    v.set_timing(True, cache=True)
    v.rip = 0x400000
    assert v.run().vector == 6
    hit, miss = v.r9, v.rax
    assert miss - hit == t.dram_cycles            # the flushed line comes from DRAM
    st = m.phys.timing_cache_stats()
    # the cold load and the load after CLFLUSH went to DRAM; the other two
    # accesses (the timed hit, CLFLUSH's own) were to the vCPU's last line,
    # an L1 hit by construction, not modelled again
    assert st == {"accesses": 2, "l1": 0, "l2": 0, "llc": 0, "dram": 2}
    with pytest.raises(ValueError):
        m.phys.set_cache_model([(64, 8, 0)])
    v2 = _machine(DIV_CODE).vcpu
    with pytest.raises(ValueError):
        v2.set_timing(True, cache=True)         # no cache model on that machine


def test_guest_clocks_advance_together():
    """clock_gettime (GuestClock) reads the TSC that carries the charged
    cycles: virtual time and the TSC stay one clock."""
    m = _machine(DIV_CODE)
    g = Guest("stealth", "virtual")
    g.install(m.vcpu)
    v = m.vcpu
    assert v.timing_state == {"class_costs": True, "cache": True}
    ns0 = g.clock.monotonic_ns(v)
    v.rip = 0x400000
    v.run()
    assert v.tsc_extra > 0
    ns1 = g.clock.monotonic_ns(v)
    assert ns1 - ns0 == pytest.approx((v.icount + v.tsc_extra) * 1e9 / g.tsc_hz, abs=2)
    g2 = Guest("stealth", "virtual", deception=Deception(cache=False))
    v2 = _machine(DIV_CODE).vcpu
    g2.install(v2)
    assert v2.timing_state == {"class_costs": True, "cache": False}


# mov rsi, 0x600000; mov ecx, 64; 1: mov rax, [rsi]; add rsi, 4096; dec ecx; jnz 1b;
# clflush [0x600000]... : 64 loads on 64 different pages (each a new line), then ud2
STRIDE_CODE = bytes.fromhex("48c7c600006000b940000000488b064881c600100000ffc975f20f0b")


def test_sampled_cache_model():
    """Sampled 1 in 4: a quarter of the accesses past L1's last line are
    modelled and charged four times; the access after a CLFLUSH is exact."""
    t = T.TEMPLATES["penryn-e8400"]
    charged = {}
    for sample in (1, 4):
        m = _machine(STRIDE_CODE)
        m.map(0x610000, 0x30000)
        m.phys.set_class_costs({})
        m.phys.set_cache_model(t.cache_levels(), sample)
        v = m.vcpu
        v.set_tsc(0, 1.0)
        v.set_timing(True, cache=True)
        v.rip = 0x400000
        assert v.run().vector == 6
        st = m.phys.timing_cache_stats()
        assert st["dram"] == 64 // sample             # cold lines: every modelled one from DRAM
        charged[sample] = v.tsc_extra
    assert charged[1] == charged[4] == 64 * t.dram_cycles
    m = _machine(CACHE_CODE)
    m.phys.set_class_costs({})
    m.phys.set_cache_model(t.cache_levels(), 4)
    v = m.vcpu
    v.set_tsc(0, 1.0)
    v.set_timing(True, cache=True)
    v.rip = 0x400000
    v.run()
    assert v.rax - v.r9 == t.dram_cycles              # the flushed line: modelled exactly
    with pytest.raises(ValueError):
        m.phys.set_cache_model(t.cache_levels(), 0)


def test_thread_vcpu_tsc_goes_on():
    """A new thread's vCPU starts at its parent's TSC, charged cycles
    included, and counts none of them twice."""
    m = _machine(DIV_CODE)
    g = Guest("stealth", "virtual")
    g.install(m.vcpu)
    v = m.vcpu
    v.rip = 0x400000
    v.run()
    assert v.tsc_extra > 0
    w = m.add_vcpu(like=v)
    assert w.tsc_extra == 0 and abs(w.tsc - v.tsc) <= 1
    m2 = _machine(DIV_CODE)                           # a machine without a cache model
    state = v.save_state()
    m2.vcpu.load_state(state)
    assert m2.vcpu.timing_state == {"class_costs": True, "cache": False}


def test_compiled_code_charges_the_same_cycles(tier):
    # the native tier charges the class costs and runs the cache model as
    # the interpreter does: the same readings, with the code compiled
    if "jit" not in emu.available_tiers():
        pytest.skip("the native-code tier exists only on x86-64 hosts")
    ref = emu_run("--profile", "stealth", "--tier", "interp", TIMING)
    r = emu_run("--profile", "stealth", "--tier", tier, "--stats", TIMING)
    assert figures(r.stdout) == figures(ref.stdout), (r.stdout, ref.stdout)
    if tier == "jit":
        m = re.search(r"tier jit: ([\d.]+)% of instructions in compiled code", r.stderr)
        assert m and float(m.group(1)) > 90, r.stderr
