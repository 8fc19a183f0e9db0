"""Known-answer tests: RFC 8032 Ed25519 vectors and BLAKE3 domains, on native and reference."""

import blake3 as blake3_pkg
import pytest

from timecoin import crypto
from timecoin.reference import crypto as reference

# RFC 8032 §7.1, TEST 1-3: (secret key, public key, message, signature), hex.
RFC8032 = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
]


@pytest.mark.parametrize("impl", [crypto, reference], ids=["native", "reference"])
@pytest.mark.parametrize("vector", RFC8032, ids=["test1", "test2", "test3"])
def test_rfc8032(impl, vector):
    sk, pk, msg, sig = (bytes.fromhex(v) for v in vector)
    assert impl.public_key(sk) == pk
    assert impl.sign(sk, msg) == sig
    assert impl.verify(pk, msg, sig)
    assert impl.verify_batch([pk, pk], [msg, msg + b"!"], [sig, sig]) == [True, False]


@pytest.mark.parametrize("impl", [crypto, reference], ids=["native", "reference"])
def test_blake3_empty_input_vector(impl):
    # BLAKE3 reference test vectors, input length 0.
    assert impl.blake3(b"").hex() == "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"


def test_domains_are_blake3_derive_key():
    data = bytes(range(200))
    for name, context in crypto.HASH_DOMAINS.items():
        assert crypto.hash_in(name, data) == blake3_pkg.blake3(data, derive_key_context=context).digest()


def test_domains_never_collide():
    outputs = {crypto.hash_in(name, b"same bytes") for name in crypto.HASH_DOMAINS}
    assert len(outputs) == len(crypto.HASH_DOMAINS)
    assert crypto.hash_txid(b"x") != crypto.hash_block_header(b"x")


def test_named_helpers_use_their_domains():
    pk = crypto.public_key(bytes(32))
    assert crypto.hash_txid(b"t") == crypto.hash_in("txid", b"t")
    assert crypto.hash_block_header(b"h") == crypto.hash_in("block_header", b"h")
    assert crypto.hash_public_key(pk) == crypto.hash_in("public_key", pk)
    assert crypto.hash_sighash(b"s") == crypto.hash_in("sighash", b"s")
