# (to be filled)

cdef void init_bit():
    pass
