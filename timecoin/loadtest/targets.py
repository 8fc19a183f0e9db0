"""Where a load test aims and what it spends (issue 15 item 1; docs/loadtest.md "Aiming at a
network"): the nodes' JSON-RPC endpoints with their credentials, and the secret keys whose coins
fund the load.

Targets, in any mix:

* an RPC URL ``http://[user:password@]host:port`` (:func:`endpoint_from_url`): credentials from
  the URL, else from a cookie file (re-read when the node restarts and writes a new one), else
  from a user and password given for every URL;
* a node's data directory or its ``timecoin.conf`` (:func:`endpoint_from_node`, the same file
  ``timecoind`` reads, docs/operator.md): host and port from ``rpcbind``/``rpcport`` (a wildcard
  bind is reached on loopback), credentials from ``rpcuser``/``rpcpassword`` or the data
  directory's cookie; the environment is not read (``TIMECOIN_*`` would apply to every node);
* a running ``timecoin devnet``'s working directory (:func:`devnet_targets`): its manifest.

Funding (:func:`read_key_file`, :func:`wallet_keys`): files of 32-byte Ed25519 secret seeds in
hex, one per line (a masternode key file's format) or a JSON list of them (a devnet's
``keys/accounts.json``); or a wallet keystore (docs/wallet.md) and its passphrase. Every coin
these keys own on the chain may be spent by the load test (fan-out and load transactions pay
back to the same keys, less the minimum fees).

This module reads files and parses; it never calls a node. Errors are :class:`TargetError`
(a ``ValueError``) naming the file or URL and what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import orjson

from timecoin.config import CONF_NAME, ConfigError, load_config
from timecoin.ledger.genesis import GenesisConfig
from timecoin.loadtest.sampler import NodeProbe
from timecoin.loadtest.submitter import Endpoint
from timecoin.rpc.server import COOKIE_FILE

__all__ = [
    "Funding",
    "TargetError",
    "devnet_probes",
    "devnet_targets",
    "node_probe",
    "endpoint_from_node",
    "endpoint_from_url",
    "read_key_file",
    "wallet_keys",
]

SEED_LEN = 32
"""Bytes of an Ed25519 secret seed (RFC 8032 §5.1.5)."""
WILDCARD_BINDS = frozenset({"0.0.0.0", "::", ""})
"""``rpcbind`` values that listen on every address: the node is then reached on loopback."""
DEVNET_MANIFEST = "devnet.json"
"""The manifest a running ``timecoin devnet`` writes (timecoin/cli/devnet.py ``MANIFEST``)."""


class TargetError(ValueError):
    """A target or funding source that cannot be used; the message names it and says why."""


@dataclass(frozen=True, slots=True)
class Funding:
    """The secret seeds that fund a run, and the genesis when the targets came with one (a
    devnet: its ``genesis.json``); without it the chain id and network come from the nodes."""

    keys: list[bytes]
    genesis: GenesisConfig | None = None


def endpoint_from_url(
    url: str, cookie: Path | None = None, user: str | None = None, password: str | None = None
) -> Endpoint:
    """The endpoint of ``http://[user:password@]host:port[/]``. Credentials: the URL's, else
    ``cookie`` (a cookie file), else ``user``/``password``. :class:`TargetError` for another
    scheme, a missing port, a path, no credentials, or a cookie that cannot be read."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise TargetError(f"{url!r}: not an RPC URL ({e})") from None
    if parts.scheme != "http":
        raise TargetError(f"{url!r}: the node's JSON-RPC is plain http://host:port (got {parts.scheme!r})")
    if not parts.hostname or port is None:
        raise TargetError(f"{url!r}: give host and port, e.g. http://127.0.0.1:24301")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise TargetError(f"{url!r}: JSON-RPC is served at / (no path, query or fragment)")
    host = parts.hostname
    if parts.username is not None:
        if parts.password is None:
            raise TargetError(f"{parts.hostname}:{port}: the URL names a user without a password")
        return Endpoint(host, port, unquote(parts.username), unquote(parts.password))
    if cookie is not None:
        try:
            return Endpoint.from_cookie(cookie, port, host)
        except (OSError, ValueError) as e:
            raise TargetError(f"{cookie}: cannot read the RPC cookie for {url} ({e})") from None
    if user is not None and password is not None:
        return Endpoint(host, port, user, password)
    raise TargetError(
        f"{url}: no credentials (put user:password@ in the URL, or give a cookie file or a user and password)"
    )


def endpoint_from_node(path: Path) -> Endpoint:
    """The endpoint of the node whose data directory or ``timecoin.conf`` is ``path``: the
    configuration ``timecoind`` would read there (file over defaults; the environment is not
    read). Credentials: ``rpcuser``/``rpcpassword`` if set, else the data directory's cookie.
    :class:`TargetError` for a bad configuration or a cookie the node has not written."""
    flags: dict[str, object] = {"datadir": str(path)} if path.is_dir() else {"conf": str(path)}
    try:
        config = load_config(flags, env={})
    except ConfigError as e:
        raise TargetError(f"{path}: {e}") from None
    if path.is_dir() and config.conf is None and not (path / COOKIE_FILE).exists():
        raise TargetError(f"{path}: neither {CONF_NAME} nor {COOKIE_FILE} (is it a node's data directory?)")
    host = "127.0.0.1" if config.rpcbind in WILDCARD_BINDS else config.rpcbind
    if config.rpcuser is not None and config.rpcpassword is not None:
        return Endpoint(host, config.rpcport, config.rpcuser, config.rpcpassword)
    try:
        return Endpoint.from_datadir(config.datadir, config.rpcport, host)
    except (OSError, ValueError) as e:
        raise TargetError(
            f"{path}: no rpcuser/rpcpassword and no readable cookie in {config.datadir} "
            f"(is the node running?): {e}"
        ) from None


def devnet_targets(workdir: Path) -> tuple[list[Endpoint], Funding]:
    """The nodes and the funded account keys of the running ``timecoin devnet`` in ``workdir``
    (its ``devnet.json`` manifest, genesis and ``keys/accounts.json``). :class:`TargetError` if
    there is no manifest or a node has not written its cookie (the devnet is not running)."""
    try:
        manifest = orjson.loads((workdir / DEVNET_MANIFEST).read_bytes())
        genesis = GenesisConfig.from_json(Path(manifest["genesis"]).read_bytes())
        keys = read_key_file(Path(manifest["accounts"]))
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError) as e:
        raise TargetError(f"{workdir}: no usable devnet manifest ({e})") from None
    try:
        endpoints = [Endpoint.from_datadir(Path(n["datadir"]), n["rpc_port"]) for n in manifest["nodes"]]
    except OSError as e:
        raise TargetError(f"the devnet in {workdir} is not running (no RPC cookie: {e})") from None
    return endpoints, Funding(keys, genesis)


def devnet_probes(workdir: Path) -> list[NodeProbe]:
    """Each devnet node's ``/metrics`` URL (a devnet serves them on loopback) and process id,
    from the manifest, in node order; :class:`TargetError` if there is no usable manifest."""
    try:
        manifest = orjson.loads((workdir / DEVNET_MANIFEST).read_bytes())
        return [
            NodeProbe(f"http://127.0.0.1:{n['metrics_port']}/metrics", n.get("pid"))
            for n in manifest["nodes"]
        ]
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError) as e:
        raise TargetError(f"{workdir}: no usable devnet manifest ({e})") from None


def node_probe(path: Path) -> NodeProbe:
    """The ``/metrics`` URL of the node whose data directory or ``timecoin.conf`` is ``path``,
    when its configuration turns metrics on (``metrics = true``); an empty probe otherwise.
    :class:`TargetError` for a bad configuration."""
    flags: dict[str, object] = {"datadir": str(path)} if path.is_dir() else {"conf": str(path)}
    try:
        config = load_config(flags, env={})
    except ConfigError as e:
        raise TargetError(f"{path}: {e}") from None
    if not config.metrics:
        return NodeProbe()
    host = "127.0.0.1" if config.metrics_bind in WILDCARD_BINDS else config.metrics_bind
    return NodeProbe(f"http://{host}:{config.metrics_port}/metrics")


def _seed(text: str, where: str) -> bytes:
    try:
        seed = bytes.fromhex(text.strip())
    except ValueError:
        raise TargetError(f"{where}: not hex") from None
    if len(seed) != SEED_LEN:
        raise TargetError(f"{where}: a secret seed is {SEED_LEN} bytes, got {len(seed)}")
    return seed


def read_key_file(path: Path) -> list[bytes]:
    """The 32-byte secret seeds in ``path``: hex, one per line (blank lines and ``#`` comments
    skipped), or a JSON list of hex strings. :class:`TargetError` for an unreadable file, a
    malformed seed (its line or index is named, never its content) or no seed at all."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise TargetError(f"{path}: cannot read the key file ({e})") from None
    if text.lstrip().startswith("["):
        try:
            items = orjson.loads(text)
        except orjson.JSONDecodeError as e:
            raise TargetError(f"{path}: not a JSON list of hex seeds ({e})") from None
        if not all(isinstance(i, str) for i in items):
            raise TargetError(f"{path}: not a JSON list of hex seeds")
        keys = [_seed(item, f"{path} item {i}") for i, item in enumerate(items)]
    else:
        keys = [
            _seed(line, f"{path} line {n}")
            for n, line in enumerate(text.splitlines(), 1)
            if line.strip() and not line.lstrip().startswith("#")
        ]
    if not keys:
        raise TargetError(f"{path}: no secret seed in the key file")
    return keys


def wallet_keys(path: Path, passphrase_file: Path) -> list[bytes]:
    """The secret seeds of every key of the wallet keystore ``path`` (docs/wallet.md), unlocked
    with the first line of ``passphrase_file``. :class:`TargetError` for an unreadable
    passphrase file, a wrong passphrase or a damaged keystore."""
    from timecoin.wallet import Keystore, KeystoreError

    try:
        lines = passphrase_file.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise TargetError(f"{passphrase_file}: cannot read the passphrase ({e})") from None
    if not lines or not lines[0]:
        raise TargetError(f"{passphrase_file}: the passphrase file is empty")
    try:
        keystore = Keystore.unlock(path, lines[0])
    except KeystoreError as e:
        raise TargetError(str(e)) from None
    if not keystore.keys:
        raise TargetError(f"{path}: the wallet holds no key")
    return [k.secret for k in keystore.keys]
