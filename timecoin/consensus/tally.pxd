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
    cdef readonly tuple records
    cdef readonly tuple indexes


cdef class _Parked:
    cdef public object batches
    cdef public Py_ssize_t size


cdef class _TxState:
    cdef public object accept
    cdef public object reject
    cdef public dict decisions


cdef inline Py_ssize_t _index(Py_ssize_t code)


cdef class Tally:
    cdef public object vset
    cdef dict _txs
    cdef object _total
    cdef dict _parked
    cdef dict _waiting
    cdef Py_ssize_t _parked_count
    cdef list _batches
    cdef list _batch_refs
    cdef dict _batch_numbers
    cdef list _free_numbers

    @cython.locals(txs=dict, state=_TxState, decisions=dict, final=list, rejected=list,
                   contradictions=list, parked=list, fetch=list, number=Py_ssize_t,
                   base=Py_ssize_t, counted=Py_ssize_t, index=Py_ssize_t)
    cpdef tuple count(self, VoteRecord record, held)
