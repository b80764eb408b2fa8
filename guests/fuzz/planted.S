/* A fuzz target with two planted bugs, for emu fuzz (emu/cluster/fuzz.py).
 * A flat binary loaded at 0x400000, entered at its first byte in 64-bit
 * mode with rdi = the input, rsi = its length; HLT ends a run that
 * survived. Frame pointers are kept: crashes are told apart by the
 * faulting RIP and the return addresses of the RBP chain.
 *   "EM!..."   -> a write to an unmapped page (#PF) in boom(), via check()
 *   "DV..."    -> a divide by zero (#DE) in divide(), via check()
 * Each byte is compared in its own branch, so edge coverage sees each step. */
        .intel_syntax noprefix
        .text
        .globl _start
_start:
        push rbp
        mov rbp, rsp
        call check
        pop rbp
        hlt

check:
        push rbp
        mov rbp, rsp
        cmp rsi, 2
        jb 9f
        cmp byte ptr [rdi], 'D'
        jne 1f
        cmp byte ptr [rdi+1], 'V'
        jne 9f
        call divide
        jmp 9f
1:      cmp rsi, 3
        jb 9f
        cmp byte ptr [rdi], 'E'
        jne 9f
        cmp byte ptr [rdi+1], 'M'
        jne 9f
        cmp byte ptr [rdi+2], '!'
        jne 9f
        call boom
9:      pop rbp
        ret

boom:
        push rbp
        mov rbp, rsp
        movabs rax, 0xdead0000
        mov byte ptr [rax], 1
        pop rbp
        ret

divide:
        push rbp
        mov rbp, rsp
        movzx eax, byte ptr [rdi+1]
        xor edx, edx
        movzx ecx, byte ptr [rdi]
        sub ecx, 'D'            /* zero */
        div ecx
        pop rbp
        ret
