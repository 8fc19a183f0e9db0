"""Atheris harness: arbitrary bytes as a consensus message, finality certificate or commit
certificate (timecoin/consensus/messages.py; layouts in docs/encoding.md).

The contract (docs/fuzzing.md): each decoder returns a value or raises ``MessageError``; any
other exception is a crash. What decodes is canonical, so it re-encodes to the input bytes,
and its signing messages can be built. A decoded certificate then goes through the checks a
node runs on one from a peer (``verify_certificate``, ``verify_commit_certificate``) against
the set of its own voters: they raise ``CertificateError`` or return, nothing else.

Run: ``python tests/fuzz/fuzz_consensus_messages.py [libFuzzer flags] [corpus dirs]``;
``check_input`` is importable without atheris (the smoke test replays the corpus through it).
"""

from __future__ import annotations

import contextlib
import sys

with (
    contextlib.nullcontext()
    if __name__ != "__main__"
    else __import__("atheris").instrument_imports(include=["timecoin"])
):
    from timecoin.consensus.certificates import (
        CertificateError,
        verify_certificate,
        verify_commit_certificate,
    )
    from timecoin.consensus.messages import (
        CommitCertificate,
        FinalityCertificate,
        MessageError,
        decode_message,
    )
    from timecoin.consensus.validators import ValidatorSet

CHAIN_ID = bytes(range(32))
"""Chain id the signing messages commit to (any fixed 32 bytes)."""


def _validators(height: int, voters: list[bytes]) -> ValidatorSet:
    """The set of ``height`` holding exactly ``voters`` (weight 1 each), so a decoded certificate
    gets past the membership check to the proofs and signatures."""
    return ValidatorSet.of(height, voters, [1] * len(voters))


def check_input(data: bytes) -> None:
    try:
        message = decode_message(data)
    except MessageError:
        pass
    else:
        assert message.encode() == data, f"{type(message).__name__} does not re-encode to its input"
        message.signatures(CHAIN_ID)

    try:
        finality = FinalityCertificate.decode(data)
    except MessageError:
        pass
    else:
        assert finality.encode() == data, "finality certificate does not re-encode to its input"
        try:
            verify_certificate(
                finality, finality.txid, _validators(finality.height, finality.voters), CHAIN_ID
            )
        except CertificateError:
            pass

    try:
        commit = CommitCertificate.decode(data)
    except MessageError:
        pass
    else:
        assert commit.encode() == data, "commit certificate does not re-encode to its input"
        try:
            verify_commit_certificate(
                commit, commit.block_hash, commit.height, _validators(commit.height, commit.voters), CHAIN_ID
            )
        except CertificateError:
            pass


def main() -> None:
    import atheris  # type: ignore[import-untyped]

    atheris.Setup(sys.argv, check_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
