# (to be filled)

cdef void init_shift():
    pass
