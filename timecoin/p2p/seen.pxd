# C types for seen.py, compiled by Cython in pure Python mode (setup.py HOT_MODULES, which
# turns annotation typing off: the .py annotations are for mypy, the C types are here).
cimport cython


cpdef bytes item_key(bytes item)


cdef class SeenCache:
    cdef Py_ssize_t _capacity
    cdef set _current
    cdef set _previous

    cpdef bint add(self, bytes key)

    @cython.locals(new=list)
    cpdef list add_items(self, list items)
