# (to be filled)

cdef void init_priv():
    pass
