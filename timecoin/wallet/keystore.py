"""The wallet's keystore: one seed, the keys derived from it, encrypted in a JSON file (docs/wallet.md).

Keys are **derived deterministically** from one random 32-byte seed: key ``i`` is the Ed25519
seed ``BLAKE3.derive_key(KEY_CONTEXT, seed ‖ u32le(i))`` (BLAKE3's key derivation mode, the
``blake3`` package), so a backup of the seed (the file plus its passphrase) covers every address
the wallet ever hands out. No BIP-32/SLIP-10 tree: one flat sequence of keys is all this wallet
needs. Keys made elsewhere (a devnet's faucet key, a paper key) are **imported**
(:meth:`Keystore.import_key`): their 32-byte Ed25519 seeds are kept, encrypted, beside the wallet
seed, and a backup of the file covers them too.

The file holds, in JSON: the network, the public addresses (so ``balance`` works without the
passphrase; they are checked against the derived keys on every unlock), the Argon2id salt and
limits, and the XSalsa20-Poly1305 nonce and ciphertext of ``{"seed", "keys", "imported"}`` (PyNaCl:
``nacl.pwhash.argon2id`` stretches the passphrase into the ``SecretBox`` key). A wrong passphrase
and a tampered ciphertext both fail the Poly1305 check: :class:`KeystoreError` says so and nothing
is decrypted. The file is written atomically (a temporary file in the same directory, fsync,
rename, fsync of the directory) with mode 0600.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import blake3
import nacl.exceptions
import nacl.pwhash
import nacl.secret
import nacl.utils

from timecoin import crypto
from timecoin.core.address import address_of_key, pubkey_hash
from timecoin.params import NetworkParams, by_name

FORMAT = "timecoin-keystore"
VERSION = 1
SEED_LEN = 32
KEY_CONTEXT = "TIME Coin wallet 2025-11 Ed25519 key derivation v1"
"""BLAKE3 ``derive_key`` context of the key sequence (globally unique, hard-coded, per BLAKE3's
rule for contexts)."""
MODERATE = (nacl.pwhash.argon2id.OPSLIMIT_MODERATE, nacl.pwhash.argon2id.MEMLIMIT_MODERATE)
"""(opslimit, memlimit bytes) of a new keystore: libsodium's "moderate" Argon2id limits (3
passes, 256 MiB; about a second)."""
INTERACTIVE = (nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE, nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE)
"""libsodium's "interactive" limits (2 passes, 64 MiB): for tests."""
MAX_LIMITS = (nacl.pwhash.argon2id.OPSLIMIT_SENSITIVE, nacl.pwhash.argon2id.MEMLIMIT_SENSITIVE)
"""The largest limits a file may ask for (libsodium's "sensitive": 4 passes, 1 GiB): a file
asking for more is refused, not obeyed."""
MAX_KEYS = 100_000
"""Most keys one keystore derives (a tampered count must not make unlocking derive forever), and
most keys it imports."""


class KeystoreError(Exception):
    """A keystore that cannot be read, created or unlocked; the message says why."""


def derive_key(seed: bytes, index: int) -> bytes:
    """The 32-byte Ed25519 seed of key ``index`` (0..MAX_KEYS) of wallet seed ``seed``."""
    if len(seed) != SEED_LEN:
        raise ValueError(f"wallet seed must be {SEED_LEN} bytes, got {len(seed)}")
    if not 0 <= index < MAX_KEYS:
        raise ValueError(f"key index must be in 0..{MAX_KEYS - 1}, got {index}")
    return blake3.blake3(seed + index.to_bytes(4, "little"), derive_key_context=KEY_CONTEXT).digest()


@dataclass(frozen=True)
class Key:
    """One wallet key: Ed25519 seed (secret), public key, its address hash and address."""

    secret: bytes
    public_key: bytes
    pubkey_hash: bytes
    address: str


def _key_of(secret: bytes, params: NetworkParams) -> Key:
    public = crypto.public_key(secret)
    return Key(secret, public, pubkey_hash(public), address_of_key(public, params))


def _key(seed: bytes, index: int, params: NetworkParams) -> Key:
    return _key_of(derive_key(seed, index), params)


@dataclass
class Keystore:
    """An unlocked keystore: the seed and its first ``len(keys)`` derived keys on ``params``'
    network, then the ``imported`` keys."""

    params: NetworkParams
    seed: bytes
    keys: list[Key]
    limits: tuple[int, int]
    imported: list[Key] = field(default_factory=list)

    @classmethod
    def create(cls, params: NetworkParams, keys: int = 1, limits: tuple[int, int] = MODERATE) -> Keystore:
        """A new keystore with a fresh random seed and ``keys`` keys."""
        seed = secrets.token_bytes(SEED_LEN)
        return cls(params, seed, [_key(seed, i, params) for i in range(keys)], limits)

    @property
    def all_keys(self) -> list[Key]:
        """The derived keys, then the imported ones."""
        return [*self.keys, *self.imported]

    @property
    def addresses(self) -> list[str]:
        """Every address: the derived keys', then the imported keys'."""
        return [k.address for k in self.all_keys]

    def import_key(self, secret: bytes) -> Key:
        """Adds the key of the 32-byte Ed25519 seed ``secret`` (save the keystore afterwards to
        keep it). ``ValueError`` if it is not 32 bytes, is already in the wallet, or the wallet
        holds :data:`MAX_KEYS` imported keys."""
        if len(secret) != SEED_LEN:
            raise ValueError(f"a secret key is {SEED_LEN} bytes (64 hex digits), got {len(secret)} bytes")
        key = _key_of(secret, self.params)
        if key.address in self.addresses:
            raise ValueError(f"the key of {key.address} is already in the wallet")
        if len(self.imported) >= MAX_KEYS:
            raise ValueError(f"the wallet already holds {MAX_KEYS} imported keys")
        self.imported.append(key)
        return key

    def new_key(self) -> Key:
        """Derives the next key (save the keystore afterwards to keep it)."""
        key = _key(self.seed, len(self.keys), self.params)
        self.keys.append(key)
        return key

    def save(self, path: Path, passphrase: str) -> None:
        """Encrypts and writes the keystore to ``path`` atomically, mode 0600;
        :class:`KeystoreError` if it cannot be written."""
        opslimit, memlimit = self.limits
        salt = nacl.utils.random(nacl.pwhash.argon2id.SALTBYTES)
        box = nacl.secret.SecretBox(_stretch(passphrase, salt, opslimit, memlimit))
        secret = json.dumps(
            {
                "seed": self.seed.hex(),
                "keys": len(self.keys),
                "imported": [k.secret.hex() for k in self.imported],
            }
        ).encode()
        nonce = nacl.utils.random(nacl.secret.SecretBox.NONCE_SIZE)
        ciphertext = box.encrypt(secret, nonce).ciphertext
        doc = {
            "format": FORMAT,
            "version": VERSION,
            "network": self.params.name,
            "addresses": self.addresses,
            "kdf": {"name": "argon2id", "salt": salt.hex(), "opslimit": opslimit, "memlimit": memlimit},
            "cipher": {"name": "xsalsa20-poly1305", "nonce": nonce.hex(), "ciphertext": ciphertext.hex()},
        }
        try:
            write_atomic(path, json.dumps(doc, indent=2).encode() + b"\n")
        except OSError as e:
            raise KeystoreError(f"cannot write the wallet {path}: {e.strerror or e}") from None

    @classmethod
    def unlock(cls, path: Path, passphrase: str) -> Keystore:
        """Reads and decrypts ``path``. :class:`KeystoreError` for a missing or malformed file,
        a wrong passphrase or a tampered ciphertext (indistinguishable by design), or public
        addresses that do not match the derived keys."""
        public = read_public(path)
        doc = public.doc
        kdf, cipher = doc["kdf"], doc["cipher"]
        try:
            salt = bytes.fromhex(kdf["salt"])
            opslimit, memlimit = int(kdf["opslimit"]), int(kdf["memlimit"])
            nonce = bytes.fromhex(cipher["nonce"])
            ciphertext = bytes.fromhex(cipher["ciphertext"])
        except (KeyError, TypeError, ValueError) as e:
            raise KeystoreError(f"{path}: malformed kdf or cipher section ({e})") from None
        if kdf.get("name") != "argon2id" or cipher.get("name") != "xsalsa20-poly1305":
            raise KeystoreError(
                f"{path}: unsupported kdf {kdf.get('name')!r} or cipher {cipher.get('name')!r}"
            )
        if len(salt) != nacl.pwhash.argon2id.SALTBYTES or len(nonce) != nacl.secret.SecretBox.NONCE_SIZE:
            raise KeystoreError(f"{path}: salt or nonce of the wrong length")
        lo_ops, lo_mem = nacl.pwhash.argon2id.OPSLIMIT_MIN, nacl.pwhash.argon2id.MEMLIMIT_MIN
        if not (lo_ops <= opslimit <= MAX_LIMITS[0] and lo_mem <= memlimit <= MAX_LIMITS[1]):
            raise KeystoreError(
                f"{path}: Argon2id limits ({opslimit}, {memlimit}) outside the accepted range"
            )
        box = nacl.secret.SecretBox(_stretch(passphrase, salt, opslimit, memlimit))
        try:
            secret = json.loads(box.decrypt(ciphertext, nonce))
            seed, count = bytes.fromhex(secret["seed"]), int(secret["keys"])
            imported = [bytes.fromhex(k) for k in secret.get("imported", [])]
        except nacl.exceptions.CryptoError:
            raise KeystoreError(f"{path}: wrong passphrase, or the file was altered") from None
        except (AttributeError, KeyError, TypeError, ValueError) as e:
            raise KeystoreError(f"{path}: decrypted content is malformed ({e})") from None
        if len(seed) != SEED_LEN or not 0 <= count <= MAX_KEYS or len(imported) > MAX_KEYS:
            raise KeystoreError(f"{path}: decrypted content is malformed (seed or key count)")
        if any(len(k) != SEED_LEN for k in imported):
            raise KeystoreError(f"{path}: decrypted content is malformed (an imported key)")
        keystore = cls(
            public.params,
            seed,
            [_key(seed, i, public.params) for i in range(count)],
            (opslimit, memlimit),
            [_key_of(k, public.params) for k in imported],
        )
        if keystore.addresses != public.addresses:
            raise KeystoreError(
                f"{path}: the listed addresses do not match the encrypted keys (file altered)"
            )
        return keystore


@dataclass(frozen=True)
class PublicKeystore:
    """What a keystore file shows without its passphrase: network and addresses."""

    params: NetworkParams
    addresses: list[str]
    doc: dict[str, Any]


def read_public(path: Path) -> PublicKeystore:
    """The network and addresses of keystore ``path``; :class:`KeystoreError` if it is missing
    or not a keystore of a known version."""
    try:
        doc = json.loads(Path(path).read_bytes())
    except FileNotFoundError:
        raise KeystoreError(f"no wallet at {path} (create one with `timecoin wallet create`)") from None
    except (OSError, ValueError) as e:
        raise KeystoreError(f"cannot read wallet {path}: {e}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise KeystoreError(f"{path} is not a TIME Coin keystore")
    if doc.get("version") != VERSION:
        raise KeystoreError(
            f"{path}: keystore version {doc.get('version')!r} is not supported (only {VERSION})"
        )
    try:
        params = by_name(doc["network"])
        addresses = doc["addresses"]
        if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
            raise ValueError("addresses must be a list of strings")
        if not isinstance(doc["kdf"], dict) or not isinstance(doc["cipher"], dict):
            raise ValueError("kdf and cipher must be objects")
    except (KeyError, ValueError) as e:
        raise KeystoreError(f"{path}: malformed keystore ({e})") from None
    return PublicKeystore(params, addresses, doc)


def _stretch(passphrase: str, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    return nacl.pwhash.argon2id.kdf(
        nacl.secret.SecretBox.KEY_SIZE, passphrase.encode(), salt, opslimit=opslimit, memlimit=memlimit
    )


def write_atomic(path: Path, data: bytes) -> None:
    """Writes ``data`` to ``path`` so that a crash leaves the old file or the new one, never a
    mix: a temporary file (mode 0600) in the same directory, fsync, rename, fsync of the
    directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
