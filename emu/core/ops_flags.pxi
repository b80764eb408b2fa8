# (to be filled)

cdef void init_flags():
    pass
