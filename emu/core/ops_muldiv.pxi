# (to be filled)

cdef void init_muldiv():
    pass
