# (to be filled)

cdef void init_atomic():
    pass
