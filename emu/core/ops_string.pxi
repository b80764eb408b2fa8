# (to be filled)

cdef void init_string():
    pass
