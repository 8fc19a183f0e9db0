"""Consensus: transaction finality (votes, certificates, Snowball) and block production (BFT
rounds), as pure logic driven by messages and a clock (DESIGN §6, §7, §12; docs/consensus.md).

Modules, one role each:

* :mod:`.messages` — canonical encodings of every consensus message and what each signs;
* :mod:`.validators` — the masternode set of a height, quorum arithmetic, weighted sampling;
* :mod:`.certificates` — ``verify_certificate`` (finality) and ``verify_commit_certificate``;
* :mod:`.tally` — the per-vote hot path: accept/reject weight per txid, certificate assembly;
* :mod:`.snowball` — Snowball preference for conflicting spends;
* :mod:`.signer` — signer safety (last signed height/round/step, per-outpoint accepts);
* :mod:`.finality` — the finality engine (pending, final, rejected; conflict settlement);
* :mod:`.blocks` — building and checking full, reward-only and emergency blocks;
* :mod:`.bft` — the Tendermint round state machine of a height;
* :mod:`.engine` — :class:`Consensus`, the one object a node's consensus task owns;
* :mod:`.effects`, :mod:`.context`, :mod:`.store`, :mod:`.monitor`, :mod:`.runner` — what comes
  out, shared state, the storage layout, monitoring, and the reference driver.

Nothing here does I/O of its own, and nothing reads heartbeats or other gossip as an input to
validity (DESIGN §12 invariant 7): the production gate is a callable the node passes in.
"""

from timecoin.consensus.certificates import CertificateError, verify_certificate, verify_commit_certificate
from timecoin.consensus.engine import Consensus

__all__ = ["CertificateError", "Consensus", "verify_certificate", "verify_commit_certificate"]
