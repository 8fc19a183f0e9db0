"""Checking certificates against a masternode set: the finality certificate of a transaction
(DESIGN §6) and the commit certificate of a block (DESIGN §7).

For wallets and light clients as much as for the node: everything needed is the certificate,
the txid or block hash, the chain id (genesis hash) and the masternode set (keys and integer
weights) of the certificate's height, which is a pure function of the chain before it
(``ChainState.leader_set``). All signatures of a certificate are checked in one
``timecoin.crypto.verify_batch`` call.

Failures raise :class:`CertificateError` with a stable ``code``; nothing here changes state.
"""

from __future__ import annotations

from collections.abc import Sequence

from timecoin import crypto
from timecoin.consensus.messages import CommitCertificate, FinalityCertificate, MessageError
from timecoin.consensus.validators import ValidatorSet

__all__ = [
    "CERTIFICATE_ERRORS",
    "CertificateError",
    "check_certificate_structure",
    "check_commit_signers",
    "check_commit_structure",
    "verify_certificate",
    "verify_commit_certificate",
]

CERTIFICATE_ERRORS: dict[str, str] = {
    "bad-encoding": "The certificate is not a canonical encoding.",
    "wrong-subject": "It certifies another txid, block hash or height than the one asked about.",
    "unknown-voter": "A signer is not in the masternode set of the certificate's height.",
    "bad-proof": "A merkle proof does not place the txid among the voter's accepts.",
    "bad-signature": "A signature does not verify under its voter's key.",
    "no-quorum": "The signers' weight is below 2/3 of the set's total weight.",
}
"""Stable codes of :class:`CertificateError`."""


class CertificateError(ValueError):
    """A certificate that does not prove what it claims; ``code`` is a key of
    :data:`CERTIFICATE_ERRORS`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _as_set(height: int, validators: ValidatorSet | tuple[Sequence[bytes], Sequence[int]]) -> ValidatorSet:
    if isinstance(validators, ValidatorSet):
        if validators.height != height:
            raise CertificateError(
                "wrong-subject",
                f"certificate of height {height} checked against the set of {validators.height}",
            )
        return validators
    keys, weights = validators
    return ValidatorSet.of(height, keys, weights)


def _check_voters(cert_kind: str, voters: list[bytes], vset: ValidatorSet) -> None:
    for v in voters:
        if v not in vset:
            raise CertificateError(
                "unknown-voter", f"{cert_kind} signer {v.hex()} is not in the set of {vset.height}"
            )
    weight = vset.weight_of(voters)
    if not vset.is_quorum(weight):
        raise CertificateError(
            "no-quorum", f"{cert_kind} signers weigh {weight} of {vset.total}: below 2/3 of the set"
        )


def check_commit_signers(certificate: CommitCertificate, vset: ValidatorSet) -> None:
    """Every signer of ``certificate`` is a member of ``vset`` and together they hold 2/3 of its
    weight (signatures are checked apart). What makes a certificate above this node's height a
    proof that it is behind (DESIGN §7 "slot synchronization"). Raises :class:`CertificateError`."""
    _check_voters("commit", certificate.voters, vset)


def _check_signatures(cert_kind: str, signatures: list[tuple[bytes, bytes, bytes]]) -> None:
    verdicts = crypto.verify_batch(
        [s[0] for s in signatures], [s[1] for s in signatures], [s[2] for s in signatures]
    )
    for (voter, _, _), ok in zip(signatures, verdicts, strict=True):
        if not ok:
            raise CertificateError("bad-signature", f"{cert_kind} signature of {voter.hex()} does not verify")


def verify_certificate(
    certificate: bytes | FinalityCertificate,
    txid: bytes,
    validators: ValidatorSet | tuple[Sequence[bytes], Sequence[int]],
    chain_id: bytes,
) -> FinalityCertificate:
    """Checks that ``certificate`` proves ``txid`` final (DESIGN §6) and returns it decoded.

    ``validators`` is the masternode set of the certificate's height, as a
    :class:`ValidatorSet` or as (public keys, weights). Every entry's voter must be in the set,
    its merkle proof must place ``txid`` at ``index`` among ``accept_count`` accepts under
    ``accept_root``, its signature must verify over the vote batch it summarises
    (``messages.tx_vote_signing_message``), and the voters' weights must reach 2/3 of the set's
    total weight. Raises :class:`CertificateError` (codes :data:`CERTIFICATE_ERRORS`).
    """
    if not isinstance(certificate, FinalityCertificate):
        try:
            certificate = FinalityCertificate.decode(certificate)
        except MessageError as e:
            raise CertificateError("bad-encoding", str(e)) from None
    vset = _as_set(certificate.height, validators)
    check_certificate_structure(certificate, txid, vset)
    _check_signatures("finality", certificate.signatures(chain_id))
    return certificate


def check_certificate_structure(certificate: FinalityCertificate, txid: bytes, vset: ValidatorSet) -> None:
    """Everything :func:`verify_certificate` checks except the signatures (which the engine
    verifies in its one batch call per inbox drain): subject, voters, proofs, quorum."""
    if certificate.txid != txid:
        raise CertificateError(
            "wrong-subject", f"certificate is for txid {certificate.txid.hex()}, not {txid.hex()}"
        )
    if certificate.height != vset.height:
        raise CertificateError(
            "wrong-subject", f"certificate of height {certificate.height}, set of {vset.height}"
        )
    for e in certificate.entries:
        if not crypto.verify_merkle_proof(txid, e.index, e.accept_count, list(e.proof), e.accept_root):
            raise CertificateError(
                "bad-proof", f"voter {e.voter.hex()}'s proof does not place the txid under its root"
            )
    _check_voters("finality", certificate.voters, vset)


def check_commit_structure(
    certificate: CommitCertificate, block_hash: bytes, height: int, vset: ValidatorSet
) -> None:
    """Everything :func:`verify_commit_certificate` checks except the signatures."""
    if (certificate.block_hash, certificate.height, vset.height) != (block_hash, height, height):
        raise CertificateError(
            "wrong-subject",
            f"certificate commits {certificate.block_hash.hex()} at {certificate.height}, "
            f"not {block_hash.hex()} at {height}",
        )
    _check_voters("commit", certificate.voters, vset)


def verify_commit_certificate(
    certificate: bytes | CommitCertificate,
    block_hash: bytes,
    height: int,
    validators: ValidatorSet | tuple[Sequence[bytes], Sequence[int]],
    chain_id: bytes,
) -> CommitCertificate:
    """Checks that ``certificate`` commits block ``block_hash`` at ``height`` (DESIGN §7): every
    signer in the set of ``height``, every precommit signature valid, and the signers' weight at
    least 2/3 of the whole set's. Returns it decoded; raises :class:`CertificateError`."""
    if not isinstance(certificate, CommitCertificate):
        try:
            certificate = CommitCertificate.decode(certificate)
        except MessageError as e:
            raise CertificateError("bad-encoding", str(e)) from None
    vset = _as_set(height, validators)
    check_commit_structure(certificate, block_hash, height, vset)
    _check_signatures("commit", certificate.signatures(chain_id))
    return certificate
