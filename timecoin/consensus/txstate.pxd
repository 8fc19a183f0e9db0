# Cython declarations augmenting txstate.py (pure Python mode; setup.py HOT_MODULES).

cdef class PendingTx:
    cdef public object txid
    cdef public object raw
    cdef public object inputs
    cdef public object first_seen
    cdef public object in_mempool
    cdef public object decision
    cdef public object last_voted
    cdef public object last_relayed
    cdef public object conflict_since


cdef class FinalEntry:
    cdef public object raw
    cdef public object certificate
    cdef public object inputs
    cdef public object key
