# Execution tiers: the uop interpreter (the reference), and the native-code
# tier that compiles hot blocks to host x86-64 code. A machine runs under one
# setting: "interp" (interpreter only), "jit" (every block compiled once it has
# run jit_threshold times; 0 compiles before the first run) or "auto" (the
# default: the JIT where the host can run it, with the default threshold).

cdef enum:
    TIER_INTERP = 0
    TIER_JIT = 1
    TIER_AUTO = 2
    JIT_THRESHOLD_DEFAULT = 50

TIER_NAMES = ("interp", "jit", "auto")

import os as _os

# the default for machines created without a tier: EMU_TIER in the
# environment (so `emu` subprocesses of a test inherit the test's tier)
_default_tier = _os.environ.get("EMU_TIER") or "auto"


# (os.uname rather than the platform module, which costs start-up time)
_HOST_X86_64 = _os.uname().machine.lower() in ("x86_64", "amd64")


def available_tiers():
    """The tier settings this host can run: the native tier exists only on
    x86-64 hosts (it emits x86-64 code)."""
    return TIER_NAMES if _HOST_X86_64 else ("interp",)


def set_default_tier(name):
    """The tier of machines created from now on without an explicit one."""
    global _default_tier
    tier_setting(name, None)
    _default_tier = name


def get_default_tier():
    return _default_tier


cdef tuple tier_setting(object tier, object threshold):
    """(TIER_*, threshold) for a tier name (None: the default) and threshold."""
    if tier is None:
        tier = _default_tier
    if tier not in TIER_NAMES:
        raise ValueError("unknown execution tier %r (choose from %s)" % (tier, ", ".join(TIER_NAMES)))
    if tier != "interp" and tier not in available_tiers():
        # "auto" quietly means the interpreter where there is no native tier
        if tier == "jit":
            raise ValueError("the native-code tier is not available on this host")
        tier = "interp"
    t = TIER_NAMES.index(tier)
    if threshold is None:
        # "jit" compiles everything before it first runs; "auto" what gets hot
        threshold = _os.environ.get("EMU_JIT_THRESHOLD")
        threshold = int(threshold) if threshold else (0 if t == TIER_JIT else JIT_THRESHOLD_DEFAULT)
    if not 0 <= threshold < 1 << 31:
        raise ValueError("JIT threshold out of range: %r" % (threshold,))
    return t, threshold
