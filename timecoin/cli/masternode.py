"""``timecoin masternode``: make a masternode key, and register, deregister or change the payout
of a masternode from a wallet (docs/masternodes.md "Registering a masternode"; Dash's ``protx``
is the model).

    timecoin masternode genkey FILE
    timecoin masternode register (--collateral TXID:VOUT | --free) --key FILE [--payout ADDRESS]
                                 [--no-wait] [--wait-timeout SECONDS]
    timecoin masternode set-payout ADDRESS (--collateral TXID:VOUT | --free --key FILE) [...]
    timecoin masternode deregister (--collateral TXID:VOUT | --free --key FILE) [...]
    timecoin masternode status (PUBLIC_KEY | --key FILE)

The options before the command are ``timecoin wallet``'s (``--datadir``, ``--wallet``, the
passphrase sources, ``--rpcconnect``/``--rpcport``, ...). ``register``, ``set-payout`` and
``deregister`` build the transaction (:mod:`timecoin.wallet.masternode`), sign it with the
wallet's keys (and the masternode key where the rules want it), send it and, unless
``--no-wait``, wait until a block holds it; they print the txid, then the block height and the
masternode's status. The fee (the base fee, 1,000 sat on every network) comes from the wallet's
largest coin that is no masternode's collateral. Errors print to stderr and exit with status 1.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import click
import orjson

from timecoin import crypto
from timecoin.cli.wallet import Context, _errors, _show, wallet
from timecoin.config import ConfigError
from timecoin.core.address import decode_address
from timecoin.core.types import (
    MasternodeDeregistration,
    MasternodePayoutChange,
    MasternodeRegistration,
    OutPoint,
)
from timecoin.params import TIER_COLLATERAL, Tier, tier_for_collateral
from timecoin.wallet import masternode as mntx
from timecoin.wallet.keystore import Keystore
from timecoin.wallet.node import NodeWallet

SECRET_KEY_LEN = 32
"""Bytes of an Ed25519 seed (a masternode key file holds it as 64 hex digits)."""
DEFAULT_WAIT = 120.0
"""Seconds ``register``/``set-payout``/``deregister`` wait for a block by default."""

masternode = click.Group(
    name="masternode",
    params=list(wallet.params),
    callback=wallet.callback,
    help="Masternode keys and registrations, paid and signed by a wallet (docs/masternodes.md).",
)


def _read_key(path: Path) -> bytes:
    from timecoin.node import read_secret_key

    try:
        return read_secret_key(path, "--key")
    except ConfigError as e:
        raise click.ClickException(str(e)) from None


def _outpoint(text: str) -> OutPoint:
    txid, sep, vout = text.rpartition(":")
    try:
        if not sep:
            raise ValueError
        out = OutPoint(bytes.fromhex(txid), int(vout))
    except ValueError:
        raise click.BadParameter(
            f"expected TXID:VOUT (64 hex digits, a colon, an index), got {text!r}"
        ) from None
    if out == OutPoint.NULL:
        raise click.BadParameter("the null outpoint is no collateral: use --free")
    return out


def _show_outpoint(outpoint: OutPoint) -> str:
    return f"{outpoint.txid.hex()}:{outpoint.vout}"


@masternode.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def genkey(file: Path) -> None:
    """Make a new masternode key: FILE gets its 32-byte Ed25519 seed as 64 hex digits (mode
    0600; an existing FILE is never overwritten). Prints the public key; give FILE to the node
    as masternode_key and to `register --key`."""
    seed = secrets.token_bytes(SECRET_KEY_LEN)
    try:
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise click.ClickException(f"{file} exists: not overwritten (it may hold a key in use)") from None
    except OSError as e:
        raise click.ClickException(f"cannot create {file}: {e.strerror}") from None
    with os.fdopen(fd, "w") as f:
        f.write(seed.hex() + "\n")
    click.echo(crypto.public_key(seed).hex())


def _unlock(obj: Context) -> tuple[Keystore, NodeWallet]:
    store = Keystore.unlock(obj.wallet_path, obj.passphrase())
    if store.params is not obj.params:
        raise click.ClickException(f"the wallet is for {store.params.name}, not {obj.params.name}")
    return store, obj.node()


def _entry(node: NodeWallet, collateral: OutPoint | None, public_key: bytes | None) -> dict[str, Any]:
    """The ``masternodelist`` row of the masternode with this collateral, or (Free tier) key."""
    for row in node.rpc.masternodelist():
        c = row.get("collateral")
        if collateral is not None and c is not None and _outpoint(f"{c['txid']}:{c['vout']}") == collateral:
            return row  # type: ignore[no-any-return]
        if collateral is None and c is None and row["public_key"] == (public_key or b"").hex():
            return row  # type: ignore[no-any-return]
    what = f"collateral {_show_outpoint(collateral)}" if collateral is not None else "this Free-tier key"
    raise click.ClickException(f"no registered masternode has {what} (see `timecoin-cli masternodelist`)")


def _send(
    obj: Context,
    store: Keystore,
    node: NodeWallet,
    payload: mntx.MasternodePayload,
    extra_secrets: list[bytes],
    wait: bool,
    wait_timeout: float,
) -> str:
    """Builds, signs, sends ``payload``; prints the txid (and with ``wait`` the block); the txid."""
    coin = mntx.fee_coin(obj.params, node.spendable(store.addresses), node.collaterals())
    spend = mntx.build(obj.params, payload, coin)
    secret = {k.pubkey_hash: k.secret for k in store.all_keys}[coin.pubkey_hash]
    signed = spend.transaction.signed_with([secret, *extra_secrets], node.chain_id(), int(obj.params.network))
    txid: str = node.rpc.sendrawtransaction(signed.encode().hex())
    click.echo(f"sent {signed.kind.name.lower()}, fee {_show(spend.fee)}", err=True)
    click.echo(txid)
    if wait:
        height = node.wait_block(txid, wait_timeout)
        if height is None:
            raise click.ClickException(f"transaction {txid} is in no block after {wait_timeout:g} s")
        click.echo(f"in block {height}")
    return txid


def _wait_options(fn: Any) -> Any:
    fn = click.option(
        "--wait-timeout",
        default=DEFAULT_WAIT,
        type=click.FloatRange(min=0),
        show_default=True,
        help="Seconds to wait for a block.",
    )(fn)
    return click.option("--no-wait", is_flag=True, help="Do not wait for a block to hold it.")(fn)


def _which_options(fn: Any) -> Any:
    fn = click.option(
        "--key", "key_file", type=click.Path(dir_okay=False, path_type=Path), help="Masternode key file."
    )(fn)
    fn = click.option("--free", is_flag=True, help="A Free-tier masternode: no collateral (needs --key).")(fn)
    return click.option("--collateral", metavar="TXID:VOUT", help="The masternode's collateral coin.")(fn)


def _which(collateral: str | None, free: bool) -> OutPoint | None:
    if free == (collateral is not None):
        raise click.UsageError(
            "give --collateral TXID:VOUT or --free, not both"
            if free
            else "give --collateral TXID:VOUT or --free"
        )
    return _outpoint(collateral) if collateral is not None else None


def _print_status(node: NodeWallet, public_key: str) -> None:
    click.echo(orjson.dumps(node.rpc.masternodestatus(public_key), option=orjson.OPT_INDENT_2).decode())


@masternode.command()
@_which_options
@click.option(
    "--payout",
    metavar="ADDRESS",
    help="Where rewards go [default: the collateral's address; Free: the wallet's first].",
)
@_wait_options
@click.pass_obj
@_errors
def register(
    obj: Context,
    collateral: str | None,
    free: bool,
    key_file: Path | None,
    payout: str | None,
    no_wait: bool,
    wait_timeout: float,
) -> None:
    """Register the masternode of --key with a collateral coin of this wallet (its value gives
    the tier: Bronze from 1,000 TIME, Silver 10,000, Gold 100,000) or in the Free tier."""
    outpoint = _which(collateral, free)
    if key_file is None:
        raise click.UsageError("give --key FILE: the masternode key (`timecoin masternode genkey FILE`)")
    mn_secret = _read_key(key_file)
    mn_key = crypto.public_key(mn_secret)
    store, node = _unlock(obj)
    if outpoint is None:
        owner_secret = mn_secret
        default_payout = store.addresses[0]
        tier = Tier.FREE
    else:
        coin = next((c for c in node.unspent(store.addresses) if c.outpoint == outpoint), None)
        if coin is None:
            raise click.ClickException(
                f"collateral {_show_outpoint(outpoint)} is not an unspent coin of this wallet (in a block, "
                "spent by no pending transaction)"
            )
        tier = tier_for_collateral(coin.value)
        if tier is Tier.FREE:
            raise click.ClickException(
                f"collateral {_show_outpoint(outpoint)} holds {_show(coin.value)}, below the Bronze tier's "
                f"{_show(TIER_COLLATERAL[Tier.BRONZE])}: send exactly a tier's amount to yourself first"
            )
        if outpoint in node.collaterals():
            raise click.ClickException(f"{_show_outpoint(outpoint)} is already a masternode's collateral")
        owner_secret = {k.pubkey_hash: k.secret for k in store.all_keys}[coin.pubkey_hash]
        default_payout = next(k.address for k in store.all_keys if k.pubkey_hash == coin.pubkey_hash)
    payout_pkh = decode_address(payout or default_payout, obj.params)
    payload = MasternodeRegistration(outpoint or OutPoint.NULL, mn_key, payout_pkh)
    click.echo(f"registering masternode {mn_key.hex()} ({tier.name.lower()} tier)", err=True)
    _send(obj, store, node, payload, [mn_secret, owner_secret], not no_wait, wait_timeout)
    if not no_wait:
        _print_status(node, mn_key.hex())


def _owner_secret(
    store: Keystore, node: NodeWallet, outpoint: OutPoint | None, key_file: Path | None
) -> tuple[bytes, str]:
    """(the owner's secret, the masternode's public key hex) of the masternode chosen."""
    if outpoint is None:
        if key_file is None:
            raise click.UsageError("a Free-tier masternode is named by its key: give --key FILE")
        secret = _read_key(key_file)
        row = _entry(node, None, crypto.public_key(secret))
        return secret, row["public_key"]
    row = _entry(node, outpoint, None)
    owner = decode_address(row["owner_address"], store.params)
    owner_secret = {k.pubkey_hash: k.secret for k in store.all_keys}.get(owner)
    if owner_secret is None:
        raise click.ClickException(
            f"the owner of masternode {row['public_key']} ({row['owner_address']}) is not in this wallet"
        )
    return owner_secret, row["public_key"]


@masternode.command("set-payout")
@click.argument("address")
@_which_options
@_wait_options
@click.pass_obj
@_errors
def set_payout(
    obj: Context,
    address: str,
    collateral: str | None,
    free: bool,
    key_file: Path | None,
    no_wait: bool,
    wait_timeout: float,
) -> None:
    """Send the rewards of a masternode owned by this wallet to ADDRESS from the next block on."""
    outpoint = _which(collateral, free)
    payout_pkh = decode_address(address, obj.params)
    store, node = _unlock(obj)
    owner, public_key = _owner_secret(store, node, outpoint, key_file)
    payload = MasternodePayoutChange(outpoint or OutPoint.NULL, payout_pkh)
    _send(obj, store, node, payload, [owner], not no_wait, wait_timeout)
    if not no_wait:
        _print_status(node, public_key)


@masternode.command()
@_which_options
@_wait_options
@click.pass_obj
@_errors
def deregister(
    obj: Context,
    collateral: str | None,
    free: bool,
    key_file: Path | None,
    no_wait: bool,
    wait_timeout: float,
) -> None:
    """Deregister a masternode owned by this wallet; its collateral is then an ordinary coin."""
    outpoint = _which(collateral, free)
    store, node = _unlock(obj)
    owner, public_key = _owner_secret(store, node, outpoint, key_file)
    payload = MasternodeDeregistration(outpoint or OutPoint.NULL)
    _send(obj, store, node, payload, [owner], not no_wait, wait_timeout)
    if not no_wait:
        _print_status(node, public_key)


@masternode.command()
@click.argument("public_key", required=False)
@click.option(
    "--key", "key_file", type=click.Path(dir_okay=False, path_type=Path), help="Masternode key file."
)
@click.pass_obj
@_errors
def status(obj: Context, public_key: str | None, key_file: Path | None) -> None:
    """The masternodestatus of PUBLIC_KEY (64 hex digits) or of the key in --key FILE, as JSON."""
    if (public_key is None) == (key_file is None):
        raise click.UsageError("give PUBLIC_KEY or --key FILE")
    if key_file is not None:
        public_key = crypto.public_key(_read_key(key_file)).hex()
    assert public_key is not None
    node = obj.node()
    node.chain_id()
    _print_status(node, public_key)
