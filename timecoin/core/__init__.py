"""Consensus objects of the TIME Coin node: typed transactions, blocks and coins over the native
canonical codec (:mod:`timecoin.core.types`, docs/encoding.md) and addresses
(:mod:`timecoin.core.address`)."""
