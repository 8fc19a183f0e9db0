"""Persistent storage (DESIGN §9): one LMDB environment per datadir, named databases, one write
transaction per block."""
