# Cython declarations augmenting settle.py (pure Python mode; setup.py HOT_MODULES).
cimport cython

from timecoin.consensus.tally cimport CertificateRefs
from timecoin.consensus.txstate cimport FinalEntry


cdef class StoredBatch:
    cdef public object sequence
    cdef public Py_ssize_t refs


cdef class Archived:
    cdef public list spent
    cdef public list unknown
    cdef public list records
    cdef public list batches
    cdef public Py_ssize_t archived_bytes


@cython.locals(archived=Archived, spent=list, entry=FinalEntry, stored=StoredBatch,
               refs=CertificateRefs, left=Py_ssize_t, n=Py_ssize_t, i=Py_ssize_t)
cpdef Archived archive_final(txids, dict finalized, rejected, dict record_refs, dict batches,
                             dict spent_final)


@cython.locals(violations=list, contested=list)
cpdef tuple settle_spent(list spent, dict spent_final, dict spenders, dict snowballs)


@cython.locals(released=list, left=Py_ssize_t)
cpdef list forget_accepts(list outpoints, dict accepts, dict accept_keys, dict refs)
