"""Addresses (DESIGN §3): bech32m with per-network prefixes; typos and wrong networks are clear
errors, never a payment to the wrong key."""

import pytest

from timecoin import crypto, params
from timecoin.core.address import AddressError, address_of_key, decode_address, encode_address, pubkey_hash

PK = crypto.public_key(bytes(range(32)))


@pytest.mark.parametrize(
    "net,prefix", [(params.MAINNET, "time1"), (params.TESTNET, "ttime1"), (params.DEVNET, "dtime1")]
)
def test_round_trip_with_network_prefix(net, prefix):
    address = address_of_key(PK, net)
    assert address.startswith(prefix)
    assert decode_address(address, net) == pubkey_hash(PK) == crypto.hash_public_key(PK)
    assert decode_address(address.upper(), net) == pubkey_hash(PK)


def test_every_single_character_typo_is_caught():
    address = address_of_key(PK, params.DEVNET)
    charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
    for i in range(len("dtime1"), len(address)):
        for c in charset[:8]:
            if c == address[i]:
                continue
            typo = address[:i] + c + address[i + 1 :]
            with pytest.raises(AddressError, match="checksum"):
                decode_address(typo, params.DEVNET)


def test_wrong_network_is_named():
    address = address_of_key(PK, params.TESTNET)
    with pytest.raises(AddressError, match="is a testnet address, expected mainnet"):
        decode_address(address, params.MAINNET)


def test_bech32_not_bech32m_is_rejected():
    from bech32m.codecs import Encoding, bech32_encode, convertbits

    legacy = bech32_encode("dtime", bytes([0, *convertbits(pubkey_hash(PK), 8, 5)]), Encoding.BECH32)
    with pytest.raises(AddressError, match="bech32m"):
        decode_address(legacy, params.DEVNET)


def test_bad_input():
    with pytest.raises(AddressError):
        decode_address("", params.DEVNET)
    with pytest.raises(TypeError):
        decode_address(b"dtime1", params.DEVNET)
    with pytest.raises(ValueError, match="32 bytes"):
        encode_address(b"\0" * 20, params.DEVNET)
