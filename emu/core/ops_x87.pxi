# x87 FPU (to be filled): state lives in Cpu.fpr/fcw/fsw/ftw/ftop.

cdef void init_x87():
    pass
