# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, nonecheck=False, overflowcheck=False
"""emu's core ("the silicon"): vCPU state, decoder, translated-block cache,
interpreter loop, lazy flags and the MMU. Everything that runs per guest
instruction is C-level code here and in core/*.pxi; the Python classes at the
bottom are the public API the hypervisor layer uses."""

from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int8_t, int16_t, int32_t, int64_t, uintptr_t
from libc.string cimport memcpy, memset
from libc.stdlib cimport malloc, calloc, realloc, free
from cpython.buffer cimport PyBUF_WRITABLE
from cpython.exc cimport PyErr_CheckSignals

cdef extern from "sys/mman.h" nogil:
    void* mmap(void* addr, size_t length, int prot, int flags, int fd, long offset)
    int munmap(void* addr, size_t length)
    int madvise(void* addr, size_t length, int advice)
    int PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_SHARED, MAP_ANONYMOUS, MAP_NORESERVE, MAP_FIXED, MADV_DONTNEED
    void* MAP_FAILED

include "core/constants.pxi"
include "core/host.pxi"
include "core/tiers.pxi"
include "core/regs.pxi"
include "core/flags.pxi"
include "core/mmu.pxi"
include "core/decode.pxi"
include "core/vex.pxi"
include "core/codecache.pxi"
include "core/blocks.pxi"
include "core/demand.pxi"
include "core/predict.pxi"
include "core/run.pxi"
include "core/timing.pxi"
include "core/ops_alu.pxi"
include "core/ops_mov.pxi"
include "core/ops_control.pxi"
include "core/syscall_fast.pxi"
include "core/ops_system.pxi"
include "core/ops_shift.pxi"
include "core/ops_muldiv.pxi"
include "core/ops_bit.pxi"
include "core/ops_string.pxi"
include "core/ops_atomic.pxi"
include "core/ops_flags.pxi"
include "core/ops_priv.pxi"
include "core/system.pxi"
include "core/compat32.pxi"
include "core/ops_sse_mov.pxi"
include "core/ops_sse_int.pxi"
include "core/ops_sse_fp.pxi"
include "core/ops_x87.pxi"
include "core/ops_fxsave.pxi"
include "core/ops_crypto.pxi"
include "core/ops_avx.pxi"
include "core/ops_avx_mov.pxi"
include "core/ops_avx2.pxi"
include "core/ops_bmi.pxi"
include "core/ops_fsgsbase.pxi"
include "core/ops_mmx.pxi"
include "core/ops_fast.pxi"
include "core/hooks.pxi"
include "core/jit_asm.pxi"
include "core/jit_cache.pxi"
include "core/jit_emit.pxi"
include "core/jit_sse.pxi"
include "core/jit_runtime.pxi"
include "core/hostsig.pxi"
include "core/guards.pxi"

init_alu()
init_mov()
init_control()
init_system()
init_shift()
init_muldiv()
init_bit()
init_string()
init_atomic()
init_flags()
init_priv()
init_sysmode()
init_compat32()
init_sse_mov()
init_sse_int()
init_sse_fp()
init_x87()
init_fxsave()
init_mmx()
init_avx()
init_avx_mov()
init_avx2()
init_bmi()
init_crypto()
init_fsgsbase()

include "core/traps.pxi"
include "core/api_machine.pxi"
include "core/api_exit.pxi"
include "core/api_state.pxi"
include "core/api_vcpu.pxi"
