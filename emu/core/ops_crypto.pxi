# AES-NI (AESENC, AESENCLAST, AESDEC, AESDECLAST, AESIMC,
# AESKEYGENASSIST), PCLMULQDQ and the SHA extensions (SHA1RNDS4, SHA1NEXTE,
# SHA1MSG1, SHA1MSG2, SHA256RNDS2, SHA256MSG1, SHA256MSG2) in their legacy
# encodings; the VEX.128 AES and PCLMULQDQ forms are entries of VEX_LIST
# (ops_avx.pxi) over these same helpers. Each runs the instruction on the
# host (the sse_tab mechanism of ops_sse_int.pxi); a host without the
# extension leaves it out of every CPU model (host.pxi core_features), so
# the guest gets #UD as on a CPU without it.

cdef extern from *:
    """
    #define CRYPTO2_LIST(X) \\
        X(2, P66, 0xdb, 16, EK_ALIGN, aesimc) X(2, P66, 0xdc, 16, EK_ALIGN, aesenc) \\
        X(2, P66, 0xdd, 16, EK_ALIGN, aesenclast) X(2, P66, 0xde, 16, EK_ALIGN, aesdec) \\
        X(2, P66, 0xdf, 16, EK_ALIGN, aesdeclast) \\
        X(2, P0, 0xc8, 16, EK_ALIGN, sha1nexte) X(2, P0, 0xc9, 16, EK_ALIGN, sha1msg1) \\
        X(2, P0, 0xca, 16, EK_ALIGN, sha1msg2) X(2, P0, 0xcc, 16, EK_ALIGN, sha256msg1) \\
        X(2, P0, 0xcd, 16, EK_ALIGN, sha256msg2)
    #define CRYPTOI_LIST(X) \\
        X(3, P66, 0xdf, 16, EK_ALIGN, aeskeygenassist) X(3, P66, 0x44, 16, EK_ALIGN, pclmulqdq) \\
        X(3, P0, 0xcc, 16, EK_ALIGN, sha1rnds4)
    CRYPTO2_LIST(EMU_DEF_INT2)
    CRYPTOI_LIST(EMU_DEF_INTI)
    EMU_X0(sha256rnds2)
    static const emu_sse_def emu_crypto_defs[] = {
        CRYPTO2_LIST(EMU_TAB)
        CRYPTOI_LIST(EMU_TABI)
        {2, P0, 0xcb, 16, EK_ALIGN | EK_XMM0, emu_sha256rnds2},
        {0, 0, 0, 0, 0, 0}
    };
    """
    const emu_sse_def* emu_crypto_defs

cdef void init_crypto():
    cdef int k
    sse_register(emu_crypto_defs)
    for k in range(0xdb, 0xe0):
        gate(2, 0x2, k, FEAT_AES, NULL)
    gate(3, 0x2, 0xdf, FEAT_AES, NULL)
    gate(3, 0x2, 0x44, FEAT_PCLMUL, NULL)
    for k in range(0xc8, 0xce):
        gate(2, 0x1, k, FEAT_SHA, NULL)
    gate(3, 0x1, 0xcc, FEAT_SHA, NULL)
