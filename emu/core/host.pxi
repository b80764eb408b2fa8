# The host CPU as the core sees it: its vendor (where the SDM leaves a
# result undefined emu follows the host's vendor, so differential tests
# against the host hold on Intel and on AMD machines) and the extensions it
# can execute, which bound what the host-instruction handlers may offer.

cdef extern from *:
    """
    #include <cpuid.h>
    static void emu_host_cpuid(unsigned int leaf, unsigned int sub, unsigned int* r) {
        unsigned int a = 0, b = 0, c = 0, d = 0;
        if (leaf < 0x80000000u ? __get_cpuid_max(0, 0) >= leaf : __get_cpuid_max(0x80000000u, 0) >= leaf)
            __cpuid_count(leaf, sub, a, b, c, d);
        r[0] = a; r[1] = b; r[2] = c; r[3] = d;
    }
    static unsigned long long emu_host_xgetbv0(void) {
        unsigned int lo, hi;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        return ((unsigned long long)hi << 32) | lo;
    }
    """
    void emu_host_cpuid(unsigned int leaf, unsigned int sub, unsigned int* r) noexcept nogil
    unsigned long long emu_host_xgetbv0() noexcept nogil

# FEAT_* bits (Cpu.feat): the extensions the decoder gates on, one per CPUID
# feature flag the core checks; emu/cpuid.py names them (the CPU models).
# C enums, so the instruction tables in C (ops_avx*.pxi) use them too.
cdef extern from *:
    """
    enum {
        FEAT_AVX = 1 << 0,
        FEAT_AVX2 = 1 << 1,
        FEAT_FMA = 1 << 2,
        FEAT_F16C = 1 << 3,
        FEAT_BMI1 = 1 << 4,
        FEAT_BMI2 = 1 << 5,
        FEAT_LZCNT = 1 << 6,
        FEAT_MOVBE = 1 << 7,
        FEAT_AES = 1 << 8,
        FEAT_PCLMUL = 1 << 9,
        FEAT_SHA = 1 << 10,
        FEAT_FSGSBASE = 1 << 11,
        FEAT_RDRAND = 1 << 12,
        FEAT_RDSEED = 1 << 13,
        FEAT_XSAVE = 1 << 14,
        FEAT_XSAVEOPT = 1 << 15,
        FEAT_XSAVEC = 1 << 16,
        FEAT_XSAVES = 1 << 17,
        FEAT_POPCNT = 1 << 18,
        FEAT_SSE42 = 1 << 19,
        FEAT_ADX = 1 << 20,
        FEAT_VAES = 1 << 21,
        FEAT_VPCLMUL = 1 << 22,
        FEAT_PCID = 1 << 23,
        FEAT_INVPCID = 1 << 24,
    };
    """
    cdef enum:
        FEAT_AVX
        FEAT_AVX2
        FEAT_FMA
        FEAT_F16C
        FEAT_BMI1
        FEAT_BMI2
        FEAT_LZCNT
        FEAT_MOVBE
        FEAT_AES
        FEAT_PCLMUL
        FEAT_SHA
        FEAT_FSGSBASE
        FEAT_RDRAND
        FEAT_RDSEED
        FEAT_XSAVE
        FEAT_XSAVEOPT
        FEAT_XSAVEC
        FEAT_XSAVES
        FEAT_POPCNT
        FEAT_SSE42
        FEAT_ADX
        FEAT_VAES
        FEAT_VPCLMUL
        FEAT_PCID
        FEAT_INVPCID

cdef struct FeatBit:
    uint32_t feat, leaf, sub, reg, bit

# where each FEAT_* bit lives in CPUID (SDM Vol. 2A, CPUID, tables 3-10, 3-11, 3-8)
cdef enum:
    N_FEAT_BITS = 25
cdef FeatBit FEAT_BITS[N_FEAT_BITS]
FEAT_BITS[:] = [
    FeatBit(FEAT_AVX, 1, 0, 2, 28), FeatBit(FEAT_AVX2, 7, 0, 1, 5), FeatBit(FEAT_FMA, 1, 0, 2, 12),
    FeatBit(FEAT_F16C, 1, 0, 2, 29), FeatBit(FEAT_BMI1, 7, 0, 1, 3), FeatBit(FEAT_BMI2, 7, 0, 1, 8),
    FeatBit(FEAT_LZCNT, 0x80000001, 0, 2, 5), FeatBit(FEAT_MOVBE, 1, 0, 2, 22),
    FeatBit(FEAT_AES, 1, 0, 2, 25), FeatBit(FEAT_PCLMUL, 1, 0, 2, 1), FeatBit(FEAT_SHA, 7, 0, 1, 29),
    FeatBit(FEAT_FSGSBASE, 7, 0, 1, 0), FeatBit(FEAT_RDRAND, 1, 0, 2, 30), FeatBit(FEAT_RDSEED, 7, 0, 1, 18),
    FeatBit(FEAT_XSAVE, 1, 0, 2, 26), FeatBit(FEAT_XSAVEOPT, 0xD, 1, 0, 0), FeatBit(FEAT_XSAVEC, 0xD, 1, 0, 1),
    FeatBit(FEAT_XSAVES, 0xD, 1, 0, 3), FeatBit(FEAT_POPCNT, 1, 0, 2, 23), FeatBit(FEAT_SSE42, 1, 0, 2, 20),
    FeatBit(FEAT_ADX, 7, 0, 1, 19), FeatBit(FEAT_VAES, 7, 0, 2, 9), FeatBit(FEAT_VPCLMUL, 7, 0, 2, 10),
    FeatBit(FEAT_PCID, 1, 0, 2, 17), FeatBit(FEAT_INVPCID, 7, 0, 1, 10),
]

cdef uint32_t host_vendor_intel():
    cdef unsigned int r[4]
    emu_host_cpuid(0, 0, r)
    # "GenuineIntel": EBX "Genu", EDX "ineI", ECX "ntel"
    return 1 if r[1] == 0x756e6547 and r[3] == 0x49656e69 and r[2] == 0x6c65746e else 0

cdef uint64_t host_features():
    """The FEAT_* bits the host CPU (and its OS, for the AVX state) supports."""
    cdef unsigned int r[4]
    cdef uint64_t f = 0
    cdef int i
    cdef uint32_t last_leaf = 0xffffffff, last_sub = 0xffffffff
    for i in range(N_FEAT_BITS):
        if FEAT_BITS[i].leaf != last_leaf or FEAT_BITS[i].sub != last_sub:
            emu_host_cpuid(FEAT_BITS[i].leaf, FEAT_BITS[i].sub, r)
            last_leaf = FEAT_BITS[i].leaf
            last_sub = FEAT_BITS[i].sub
        if (r[FEAT_BITS[i].reg] >> FEAT_BITS[i].bit) & 1:
            f |= FEAT_BITS[i].feat
    emu_host_cpuid(1, 0, r)
    # AVX state usable only when the host OS enabled it (OSXSAVE, XCR0 bits 1-2)
    if not ((r[2] >> 27) & 1) or (emu_host_xgetbv0() & 6) != 6:
        f &= ~<uint64_t>(FEAT_AVX | FEAT_AVX2 | FEAT_FMA | FEAT_F16C | FEAT_VAES | FEAT_VPCLMUL)
    return f

cdef uint32_t HOST_INTEL = host_vendor_intel()
cdef uint64_t HOST_FEAT = host_features()

# extensions whose handlers run the host's own instructions
cdef uint64_t HOST_RUN = FEAT_AVX | FEAT_AVX2 | FEAT_FMA | FEAT_F16C | FEAT_AES | FEAT_PCLMUL | FEAT_SHA | \
    FEAT_VAES | FEAT_VPCLMUL

cdef uint64_t core_features() noexcept nogil:
    """The FEAT_* bits this core implements on this host: AVX needs the
    host's AVX, AVX2, FMA and F16C together (ops_avx.pxi); VAES and
    VPCLMULQDQ are not implemented."""
    cdef uint64_t f = ~(<uint64_t>0) & ~<uint64_t>(FEAT_VAES | FEAT_VPCLMUL)
    cdef uint64_t avx = FEAT_AVX | FEAT_AVX2 | FEAT_FMA | FEAT_F16C
    if HOST_FEAT & avx != avx:
        f &= ~avx
    return f & (HOST_FEAT | ~HOST_RUN)

def core_feature_names():
    """Linux flag names of the host-dependent extensions this core can offer here."""
    cdef uint64_t f = core_features()
    names = {FEAT_AVX: "avx", FEAT_AVX2: "avx2", FEAT_FMA: "fma", FEAT_F16C: "f16c", FEAT_AES: "aes",
             FEAT_PCLMUL: "pclmulqdq", FEAT_SHA: "sha_ni"}
    return sorted(n for bit, n in names.items() if f & bit)

def host_vendor_is_intel():
    return bool(HOST_INTEL)
