/* Entry from the 64-bit boot protocol, trap and syscall entry, context switch. */
    .section .text.entry, "ax"
    .globl _start
_start:
    /* long mode, paging on (identity), CS 0x10, RSI = boot_params */
    cli
    lea boot_stack_top(%rip), %rsp
    xor %ebp, %ebp
    mov %rsi, %rdi
    call kmain
1:  cli
    hlt
    jmp 1b

/* ---- exception and interrupt stubs: push (error code), vector ---- */
.macro STUB_NOERR n
    .globl vec\n
vec\n:
    pushq $0
    pushq $\n
    jmp alltraps
.endm
.macro STUB_ERR n
    .globl vec\n
vec\n:
    pushq $\n
    jmp alltraps
.endm

    .text
STUB_NOERR 0
STUB_NOERR 1
STUB_NOERR 2
STUB_NOERR 3
STUB_NOERR 4
STUB_NOERR 5
STUB_NOERR 6
STUB_NOERR 7
STUB_ERR   8
STUB_NOERR 9
STUB_ERR   10
STUB_ERR   11
STUB_ERR   12
STUB_ERR   13
STUB_ERR   14
STUB_NOERR 15
STUB_NOERR 16
STUB_ERR   17
STUB_NOERR 18
STUB_NOERR 19
STUB_NOERR 20
STUB_ERR   21
STUB_NOERR 32
STUB_NOERR 36
STUB_NOERR 37
STUB_NOERR 38
STUB_NOERR 128
STUB_NOERR 129
STUB_NOERR 255

    .globl alltraps
alltraps:
    push %rax
    push %rbx
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %rbp
    push %r8
    push %r9
    push %r10
    push %r11
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, %rdi
    call trap
    .globl trapret
trapret:
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rbp
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rbx
    pop %rax
    add $16, %rsp
    iretq

/* ---- SYSCALL: RCX = user RIP, R11 = user RFLAGS, IF cleared by SFMASK.
   Build the same frame an interrupt from ring 3 builds (vector 0x100), so
   trap() sees one layout; return with SYSRETQ from that frame. ---- */
    .globl syscall_entry
syscall_entry:
    mov %rsp, user_rsp_scratch(%rip)
    mov cur_kstack_top(%rip), %rsp
    pushq $0x23
    pushq user_rsp_scratch(%rip)
    push %r11
    pushq $0x2b
    push %rcx
    pushq $0
    pushq $0x100
    push %rax
    push %rbx
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %rbp
    push %r8
    push %r9
    push %r10
    push %r11
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, %rdi
    call trap
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rbp
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rbx
    pop %rax
    add $16, %rsp
    mov (%rsp), %rcx          /* RIP and RFLAGS from the frame */
    mov 16(%rsp), %r11
    mov 24(%rsp), %rsp        /* the user stack; IF is still 0 here */
    sysretq

/* ---- swtch(uint64_t *save, uint64_t next): callee-saved registers on the stack ---- */
    .globl swtch
swtch:
    push %rbp
    push %rbx
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, (%rdi)
    mov %rsi, %rsp
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbx
    pop %rbp
    ret

/* wrmsr that may fault: returns 0, or 1 when it raised #GP (trap() resumes at wrmsr_fixup) */
    .globl wrmsr_safe, wrmsr_insn, wrmsr_fixup
wrmsr_safe:
    mov %edi, %ecx
    mov %rsi, %rax
    mov %rsi, %rdx
    shr $32, %rdx
wrmsr_insn:
    wrmsr
    xor %eax, %eax
    ret
wrmsr_fixup:
    mov $1, %eax
    ret

    .section .rodata
    .globl user_image, user_image_end
    .balign 16
user_image:
    .incbin "build/user.bin"
user_image_end:

    .bss
    .balign 16
    .globl boot_stack_top
boot_stack:
    .skip 16384
boot_stack_top:
    .globl df_stack_top
    .skip 4096
df_stack_top:
