"""The ledger: UTXO set, validation rules, mempool, rewards, chain state (DESIGN §4, §9).

The UTXO set and every per-transaction rule run natively (native/src/{utxo,lthash,validate,
apply}.rs); this package re-exports them with their Python names:

* :class:`UtxoSet` — the whole set in memory (36-byte outpoint → 49-byte coin), its LtHash16
  commitment (``set_hash()``, 32 bytes; ``state()``, 2,048 bytes), ``apply_block`` /
  ``rollback`` with undo records (docs/encoding.md, "Undo record"), mempool admission
  (``check_transactions``) and the store delta (``take_delta``).
* :class:`LedgerRules` — the consensus parameters validation reads (from ``timecoin.params``).
* :class:`AppliedBlock`, :class:`TxVerdict` — what applying a block / checking a batch returns.
* :class:`ValidationError` — a rejection, with a stable ``code`` (one of :data:`REJECT_CODES`),
  a ``message`` and the ``tx_index`` at fault (or None).

Importing this package imports no submodule: ``timecoin.ledger.chain`` and friends build on it.
"""

from __future__ import annotations

from timecoin_native import (
    REJECT_CODES,
    AppliedBlock,
    LedgerRules,
    TxVerdict,
    UtxoSet,
    ValidationError,
)

__all__ = [
    "REJECT_CODES",
    "AppliedBlock",
    "LedgerRules",
    "TxVerdict",
    "UtxoSet",
    "ValidationError",
]
