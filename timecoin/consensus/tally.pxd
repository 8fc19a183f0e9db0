# Cython declarations augmenting tally.py (pure Python mode; setup.py HOT_MODULES).
cimport cython


cdef class VoteRecord:
    cdef public object vote
    cdef public object weight
    cdef object _levels
    cdef object _head
    cdef bytes _middle


cdef class CertificateRefs:
    cdef readonly bytes txid
    cdef readonly object height
    cdef readonly tuple accepts


cdef class _Parked:
    cdef public object batches
    cdef public Py_ssize_t size


cdef class Tally:
    cdef public object vset
    cdef dict _txs
    cdef object _total
    cdef dict _parked
    cdef dict _waiting
    cdef Py_ssize_t _parked_count

    @cython.locals(txs=dict, state=list, seen=tuple, decided=dict, final=list, rejected=list,
                   contradictions=list, parked=list, fetch=list)
    cpdef tuple count(self, VoteRecord record, held)
