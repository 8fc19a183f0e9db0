# C types for framing.py, compiled by Cython in pure Python mode (setup.py HOT_MODULES, which
# turns annotation typing off: the .py annotations are for mypy, the C types are here).
cimport cython


cdef inline unsigned int _u16(const unsigned char* p, Py_ssize_t pos) noexcept
cdef inline unsigned int _u32(const unsigned char* p, Py_ssize_t pos) noexcept


cdef class FrameDecoder:
    cdef bytes _magic
    cdef unsigned int _magic_word
    cdef tuple _limits
    cdef bytearray _buf
    cdef Py_ssize_t _need
    cdef unsigned int _type

    @cython.locals(magic="unsigned int", mtype="unsigned int", length=Py_ssize_t, limit=Py_ssize_t,
                   limits=tuple)
    cdef (unsigned int, Py_ssize_t) _check(self, const unsigned char* p, Py_ssize_t pos) except *

    @cython.locals(frames=list, n=Py_ssize_t, pos=Py_ssize_t, take=Py_ssize_t, end=Py_ssize_t,
                   mtype="unsigned int", length=Py_ssize_t, buf=bytearray, p="const unsigned char*")
    cpdef list feed(self, bytes data)
