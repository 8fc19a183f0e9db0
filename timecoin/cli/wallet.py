"""``timecoin wallet``: create a keystore, show addresses and balance, send TIME (docs/wallet.md).

    timecoin wallet [--network devnet] [--datadir DIR] [--wallet FILE] create
    timecoin wallet address [--new]
    timecoin wallet balance
    timecoin wallet send ADDRESS AMOUNT [--sat] [--fee-margin PERMILLE] [--wait] [--wait-timeout SECONDS]

The keystore is ``<datadir>/wallet.json`` unless ``--wallet`` names another file. The
passphrase comes from a prompt, or from the first line of ``--passphrase-file``. The node is
reached like ``timecoin-cli`` reaches it: ``--rpcconnect``/``--rpcport``, and the cookie in the
data directory unless ``--rpcuser``/``--rpcpassword`` are given. AMOUNT is in TIME (up to 8
decimals) unless ``--sat``. Errors print to stderr and exit with status 1; so does ``send --wait``
when the transaction is not final by the end of the wait (its status still goes to stdout).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson

from timecoin.cli.client import client_config
from timecoin.config import NodeConfig
from timecoin.core.types import U64_MAX
from timecoin.params import COIN, NetworkParams, by_name
from timecoin.rpc.client import DEFAULT_TIMEOUT, JSONRPCError, RPCClient, cookie_auth
from timecoin.wallet import keystore as ks
from timecoin.wallet.keystore import Keystore, KeystoreError, read_public
from timecoin.wallet.node import NodeWallet, WalletError

WALLET_FILE = "wallet.json"
"""The keystore's name in the data directory."""
KDF_LIMITS = {"moderate": ks.MODERATE, "interactive": ks.INTERACTIVE, "sensitive": ks.MAX_LIMITS}
"""Argon2id limit presets of ``create`` (libsodium's names)."""

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Context:
    config: NodeConfig
    params: NetworkParams
    wallet_path: Path
    passphrase_file: Path | None
    rpcconnect: str
    timeout: float

    def passphrase(self, confirm: bool = False) -> str:
        if self.passphrase_file is not None:
            try:
                text = self.passphrase_file.read_text().splitlines()
            except OSError as e:
                raise click.ClickException(f"cannot read the passphrase file: {e}") from None
            if not text or not text[0]:
                raise click.ClickException(f"the passphrase file {self.passphrase_file} is empty")
            return text[0]
        value = click.prompt("Passphrase", hide_input=True, confirmation_prompt=confirm)
        if not value:
            raise click.ClickException("the passphrase must not be empty")
        return str(value)

    def node(self) -> NodeWallet:
        user, password = self.config.rpcuser, self.config.rpcpassword
        if user is None or password is None:
            try:
                user, password = cookie_auth(self.config.datadir)
            except (OSError, ValueError) as e:
                raise click.ClickException(
                    f"cannot read the RPC cookie in {self.config.datadir} ({e}); is timecoind running there?"
                ) from None
        return NodeWallet(
            RPCClient(self.rpcconnect, self.config.rpcport, user, password, self.timeout), self.params
        )


def _errors(fn: F) -> F:
    """Turns the wallet's and the node's errors into a message on stderr and status 1."""

    @wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (KeystoreError, WalletError, ValueError) as e:  # InsufficientFunds, AddressError too
            raise click.ClickException(str(e)) from None
        except JSONRPCError as e:
            code = f" (code {e.code})" if e.code is not None else ""
            raise click.ClickException(f"the node refused{code}: {e.message}") from None
        except ConnectionError as e:
            raise click.ClickException(f"cannot connect to the node: {e}") from None
        except TimeoutError:
            raise click.ClickException("the node did not answer in time (see --timeout)") from None
        except OSError as e:  # the keystore file, or the node's address (e.g. an unknown host)
            raise click.ClickException(str(e)) from None

    return run  # type: ignore[return-value]


@click.group()
@click.option("--conf", default=None, metavar="FILE", help="Configuration file (TOML).")
@click.option("--network", default=None, metavar="NAME", help="mainnet, testnet or devnet.")
@click.option("--datadir", default=None, metavar="DIR", help="The node's data directory (cookie, wallet).")
@click.option(
    "--wallet", "wallet_file", default=None, metavar="FILE", help="Keystore [default: DATADIR/wallet.json]."
)
@click.option(
    "--passphrase-file", default=None, metavar="FILE", help="Read the passphrase from FILE's first line."
)
@click.option(
    "--rpcconnect", default="127.0.0.1", show_default=True, metavar="HOST", help="Node's RPC address."
)
@click.option("--rpcport", default=None, metavar="PORT", help="Node's RPC port [default: configured].")
@click.option("--rpcuser", default=None, metavar="USER", help="RPC user (else the cookie).")
@click.option("--rpcpassword", default=None, metavar="PASSWORD", help="RPC password.")
@click.option(
    "--timeout", default=DEFAULT_TIMEOUT, type=float, show_default=True, help="Seconds per RPC call."
)
@click.pass_context
def wallet(
    ctx: click.Context,
    conf: str | None,
    network: str | None,
    datadir: str | None,
    wallet_file: str | None,
    passphrase_file: str | None,
    rpcconnect: str,
    rpcport: str | None,
    rpcuser: str | None,
    rpcpassword: str | None,
    timeout: float,
) -> None:
    """A keystore of TIME Coin keys, and sending from it through a node (docs/wallet.md)."""
    config = client_config(conf, network, datadir, rpcport, rpcuser, rpcpassword)
    ctx.obj = Context(
        config,
        by_name(config.network),
        Path(wallet_file) if wallet_file else config.datadir / WALLET_FILE,
        Path(passphrase_file) if passphrase_file else None,
        rpcconnect,
        timeout,
    )


@wallet.command()
@click.option(
    "--keys", default=1, show_default=True, type=click.IntRange(1, ks.MAX_KEYS), help="Keys to derive now."
)
@click.option(
    "--kdf-limits",
    type=click.Choice(list(KDF_LIMITS)),
    default="moderate",
    show_default=True,
    help="Argon2id cost of unlocking (libsodium's presets).",
)
@click.pass_obj
@_errors
def create(obj: Context, keys: int, kdf_limits: str) -> None:
    """Create a new keystore with a fresh random seed; prints its first address."""
    if obj.wallet_path.exists():
        raise click.ClickException(f"{obj.wallet_path} already exists; refusing to overwrite a wallet")
    store = Keystore.create(obj.params, keys, KDF_LIMITS[kdf_limits])
    store.save(obj.wallet_path, obj.passphrase(confirm=True))
    click.echo(
        f"created {obj.wallet_path} ({obj.params.name}); back up this file and its passphrase", err=True
    )
    click.echo(store.addresses[0])


@wallet.command()
@click.option("--new", "new", is_flag=True, help="Derive the next key (needs the passphrase).")
@click.pass_obj
@_errors
def address(obj: Context, new: bool) -> None:
    """Print the wallet's addresses (with --new: derive and print one more)."""
    if not new:
        for a in _addresses(obj):
            click.echo(a)
        return
    passphrase = obj.passphrase()
    store = Keystore.unlock(obj.wallet_path, passphrase)
    key = store.new_key()
    store.save(obj.wallet_path, passphrase)
    click.echo(key.address)


@wallet.command()
@click.option("--json", "as_json", is_flag=True, help="Print the node's getbalance answer as JSON.")
@click.pass_obj
@_errors
def balance(obj: Context, as_json: bool) -> None:
    """The wallet's balance at the node's tip, in TIME (no passphrase needed)."""
    result = obj.node().balance(_addresses(obj))
    if as_json:
        click.echo(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
        return
    click.echo(
        f"balance   {_time(result['balance_sat'])} TIME ({result['coins']} coins, height {result['height']})"
    )
    click.echo(f"available {_time(result['available_sat'])} TIME")
    if result["locked_sat"]:
        click.echo(f"locked    {_time(result['locked_sat'])} TIME (spent by pending transactions)")


@wallet.command()
@click.argument("to")
@click.argument("amount")
@click.option("--sat", is_flag=True, help="AMOUNT is in sat, not TIME.")
@click.option(
    "--fee-margin",
    default=0,
    show_default=True,
    type=click.IntRange(0, 1_000_000),
    metavar="PERMILLE",
    help="Pay this many thousandths over the minimum fee.",
)
@click.option("--wait", is_flag=True, help="Wait for finality (waittransactionfinality).")
@click.option(
    "--wait-timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds to wait for finality.",
)
@click.pass_obj
@_errors
def send(
    obj: Context, to: str, amount: str, sat: bool, fee_margin: int, wait: bool, wait_timeout: float
) -> None:
    """Pay AMOUNT to address TO; prints the txid (and the finality status with --wait, exiting
    with status 1 unless the transaction is final)."""
    value = _parse_amount(amount, sat)
    passphrase = obj.passphrase()
    store = Keystore.unlock(obj.wallet_path, passphrase)
    if store.params is not obj.params:
        raise click.ClickException(f"the wallet is for {store.params.name}, not {obj.params.name}")
    node = obj.node()
    sent = node.send(store, [(to, value)], fee_margin_per_mille=fee_margin)
    click.echo(
        f"sent {_time(value)} TIME, fee {sent.fee} sat, change {sent.change} sat, {sent.inputs} inputs",
        err=True,
    )
    click.echo(sent.txid)
    if wait:
        status = node.wait_final(sent.txid, wait_timeout)
        click.echo(orjson.dumps(status, option=orjson.OPT_INDENT_2).decode())
        state = status.get("status")
        if state == "rejected":
            raise click.ClickException(f"transaction {sent.txid} was rejected: {status.get('reason')}")
        if state != "final":
            raise click.ClickException(
                f"transaction {sent.txid} is not final after {wait_timeout:g} s (status {state})"
            )


def _addresses(obj: Context) -> list[str]:
    public = read_public(obj.wallet_path)
    if public.params is not obj.params:
        raise KeystoreError(f"{obj.wallet_path} is a {public.params.name} wallet, not {obj.params.name}")
    return public.addresses


def _parse_amount(text: str, sat: bool) -> int:
    """AMOUNT in sat: a whole number of sat with ``--sat``, else TIME with at most 8 decimals
    (exact: no rounding), in 1..U64_MAX sat. ``click.BadParameter`` otherwise."""
    try:
        if sat:
            sats = Fraction(int(text))
        else:
            value = Decimal(text)
            # Bound the exponent before converting exactly: 1e999999999 must not build a huge int.
            if not value.is_finite() or not -20 <= value.adjusted() <= 20:
                raise ValueError
            sats = Fraction(value) * COIN
    except (InvalidOperation, ValueError):
        raise click.BadParameter(f"{text!r} is not an amount", param_hint="AMOUNT") from None
    if sats.denominator != 1 or sats <= 0:
        raise click.BadParameter(f"{text!r} must be positive with at most 8 decimals", param_hint="AMOUNT")
    if sats > U64_MAX:
        raise click.BadParameter(f"{text!r} is over the largest amount, {U64_MAX} sat", param_hint="AMOUNT")
    return int(sats)


def _time(sat: int) -> str:
    return f"{Decimal(sat) / COIN:.8f}"
