# C types for items.py, compiled by Cython in pure Python mode (setup.py HOT_MODULES, which
# turns annotation typing off: the .py annotations are for mypy, the C types are here).
cimport cython


cdef inline unsigned int _u32(const unsigned char* p, Py_ssize_t pos) noexcept

@cython.locals(parts=list)
cpdef bytes encode_items(list items)

@cython.locals(n=Py_ssize_t, count=Py_ssize_t, pos=Py_ssize_t, length=Py_ssize_t, end=Py_ssize_t,
               _i=Py_ssize_t, items=list, p="const unsigned char*")
cpdef list decode_items(bytes data, Py_ssize_t max_items, Py_ssize_t max_item, str name)
