"""UcError: Unicorn's exception, with the error numbers of unicorn_const."""
from __future__ import annotations

from emu.unicorn import unicorn_const as U

# what each error means (Unicorn's documented meanings, in our words)
MESSAGES = {
    U.UC_ERR_OK: "OK (UC_ERR_OK)",
    U.UC_ERR_NOMEM: "No memory available or memory not present (UC_ERR_NOMEM)",
    U.UC_ERR_ARCH: "Invalid/unsupported architecture (UC_ERR_ARCH)",
    U.UC_ERR_HANDLE: "Invalid handle (UC_ERR_HANDLE)",
    U.UC_ERR_MODE: "Invalid mode (UC_ERR_MODE)",
    U.UC_ERR_VERSION: "Different API version between core & binding (UC_ERR_VERSION)",
    U.UC_ERR_READ_UNMAPPED: "Invalid memory read (UC_ERR_READ_UNMAPPED)",
    U.UC_ERR_WRITE_UNMAPPED: "Invalid memory write (UC_ERR_WRITE_UNMAPPED)",
    U.UC_ERR_FETCH_UNMAPPED: "Invalid memory fetch (UC_ERR_FETCH_UNMAPPED)",
    U.UC_ERR_HOOK: "Invalid hook type (UC_ERR_HOOK)",
    U.UC_ERR_INSN_INVALID: "Invalid instruction (UC_ERR_INSN_INVALID)",
    U.UC_ERR_MAP: "Invalid memory mapping (UC_ERR_MAP)",
    U.UC_ERR_WRITE_PROT: "Write to write-protected memory (UC_ERR_WRITE_PROT)",
    U.UC_ERR_READ_PROT: "Read from non-readable memory (UC_ERR_READ_PROT)",
    U.UC_ERR_FETCH_PROT: "Fetch from non-executable memory (UC_ERR_FETCH_PROT)",
    U.UC_ERR_ARG: "Invalid argument (UC_ERR_ARG)",
    U.UC_ERR_READ_UNALIGNED: "Read from unaligned memory (UC_ERR_READ_UNALIGNED)",
    U.UC_ERR_WRITE_UNALIGNED: "Write to unaligned memory (UC_ERR_WRITE_UNALIGNED)",
    U.UC_ERR_FETCH_UNALIGNED: "Fetch from unaligned memory (UC_ERR_FETCH_UNALIGNED)",
    U.UC_ERR_HOOK_EXIST: "Hook for this type event already exists (UC_ERR_HOOK_EXIST)",
    U.UC_ERR_RESOURCE: "Insufficient resource (UC_ERR_RESOURCE)",
    U.UC_ERR_EXCEPTION: "Unhandled CPU exception (UC_ERR_EXCEPTION)",
    U.UC_ERR_OVERFLOW: "Provided buffer is too small (UC_ERR_OVERFLOW)",
}


def strerror(errno: int) -> str:
    return MESSAGES.get(errno, "Unknown error code (%d)" % errno)


class UcError(Exception):
    def __init__(self, errno: int, *args):
        super().__init__(*args)
        self.errno = errno

    def __str__(self) -> str:
        return strerror(self.errno)
