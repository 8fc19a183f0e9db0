"""``timecoin wallet``: create a keystore, import keys, show addresses and balance, send TIME
(docs/wallet.md).

    timecoin wallet [--network devnet] [--datadir DIR] [--wallet FILE] create
    timecoin wallet address [--new]
    timecoin wallet import-key FILE|-
    timecoin wallet balance [--json] [--sat]
    timecoin wallet send ADDRESS (AMOUNT | --all) [--subtract-fee] [--sat] [--fee-margin PERMILLE]
                         [--yes] [--wait [--wait-timeout SECONDS] [--certificate] [--wait-block]]

The keystore is ``<datadir>/wallet.json`` unless ``--wallet`` names another file. The
passphrase comes from the first line of ``--passphrase-file``, of file descriptor
``--passphrase-fd``, from ``$TIMECOIN_WALLET_PASSPHRASE``, from a prompt on a terminal, or else
from the first line of standard input (a pipe); a new one has at least
:data:`MIN_PASSPHRASE_LEN` characters. The node is reached like ``timecoin-cli`` reaches it:
``--rpcconnect``/``--rpcport``, and the cookie in the data directory unless
``--rpcuser``/``--rpcpassword`` are given. Every amount, read or printed, is TIME with 8
decimals, or sat with ``--sat``. Errors print to stderr and exit with status 1; so does
``send --wait`` when the transaction is not final by the end of the wait.
"""

from __future__ import annotations

import os
import sys
import time
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
PASSPHRASE_ENV = "TIMECOIN_WALLET_PASSPHRASE"
"""Environment variable a script may put the passphrase in."""
MIN_PASSPHRASE_LEN = 8
"""Fewest characters of a new passphrase (NIST SP 800-63B §5.1.1.2: memorized secrets of at
least 8 characters; Argon2id makes each guess cost about a second)."""
CONFIRM_FEE_ABOVE = COIN
"""sat: ``send`` asks before paying a larger fee (1 TIME, the fee of a ~1,000 TIME payment),
unless ``--yes``."""
MAX_SECRET_FILE = 4096
"""Bytes ``import-key`` reads at most: a key file is one line of 64 hex digits."""

F = TypeVar("F", bound=Callable[..., Any])


def _first_line(text: str, source: str) -> str:
    line = text.splitlines()[0] if text else ""
    if not line:
        raise click.ClickException(f"no passphrase in {source} (its first line is empty)")
    return line


@dataclass
class Context:
    config: NodeConfig
    params: NetworkParams
    wallet_path: Path
    passphrase_file: Path | None
    passphrase_fd: int | None
    rpcconnect: str
    timeout: float
    stdin_used: bool = False

    @property
    def endpoint(self) -> str:
        """host:port of the node's RPC server."""
        return f"{self.rpcconnect}:{self.config.rpcport}"

    def passphrase(self, new: bool = False) -> str:
        """The passphrase, from the first source given (module docstring). ``new``: it will
        encrypt a new keystore, so a prompt asks twice and it must be at least
        :data:`MIN_PASSPHRASE_LEN` characters. ``click.ClickException`` otherwise."""
        if self.passphrase_file is not None:
            try:
                value = _first_line(self.passphrase_file.read_text(), str(self.passphrase_file))
            except OSError as e:
                raise click.ClickException(f"cannot read the passphrase file: {e}") from None
        elif self.passphrase_fd is not None:
            try:
                with os.fdopen(os.dup(self.passphrase_fd), "r") as f:
                    value = _first_line(f.readline(), f"file descriptor {self.passphrase_fd}")
            except OSError as e:
                raise click.ClickException(f"cannot read file descriptor {self.passphrase_fd}: {e}") from None
        elif os.environ.get(PASSPHRASE_ENV):
            value = os.environ[PASSPHRASE_ENV]
        elif sys.stdin.isatty():
            value = str(click.prompt("Passphrase", hide_input=True, confirmation_prompt=new, err=True))
        else:
            self.stdin_used = True
            value = _first_line(sys.stdin.readline(), "standard input")
        if not value:
            raise click.ClickException("the passphrase must not be empty")
        if new and len(value) < MIN_PASSPHRASE_LEN:
            raise click.ClickException(
                f"the passphrase has {len(value)} characters; use at least {MIN_PASSPHRASE_LEN}"
            )
        return value

    def node(self) -> NodeWallet:
        user, password = self.config.rpcuser, self.config.rpcpassword
        if user is None or password is None:
            try:
                user, password = cookie_auth(self.config.datadir)
            except (OSError, ValueError) as e:
                raise click.ClickException(
                    f"cannot read the RPC cookie in {self.config.datadir} ({e}); is timecoind running "
                    f"there? (the wallet talks to {self.endpoint})"
                ) from None
        return NodeWallet(
            RPCClient(self.rpcconnect, self.config.rpcport, user, password, self.timeout), self.params
        )


def _errors(fn: F) -> F:
    """Turns the wallet's and the node's errors into a message on stderr and status 1; the
    connection errors name the node's host:port."""

    @wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        obj = click.get_current_context().find_object(Context)
        where = f" at {obj.endpoint}" if obj is not None else ""
        try:
            return fn(*args, **kwargs)
        except (KeystoreError, WalletError, ValueError) as e:  # InsufficientFunds, AddressError too
            raise click.ClickException(str(e)) from None
        except JSONRPCError as e:
            code = f" (code {e.code})" if e.code is not None else ""
            raise click.ClickException(f"the node{where} refused{code}: {e.message}") from None
        except ConnectionError as e:
            raise click.ClickException(f"cannot connect to the node{where}: {e}") from None
        except TimeoutError:
            raise click.ClickException(f"the node{where} did not answer in time (see --timeout)") from None
        except OSError as e:  # the keystore file, or the node's address (e.g. an unknown host)
            if e.filename is None:
                raise click.ClickException(f"cannot reach the node{where}: {e}") from None
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
    "--passphrase-fd",
    default=None,
    type=click.IntRange(min=0),
    metavar="FD",
    help=f"Read the passphrase from the first line of file descriptor FD (else ${PASSPHRASE_ENV}, "
    "a prompt on a terminal, or the first line of standard input).",
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
    passphrase_fd: int | None,
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
        passphrase_fd,
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
    store.save(obj.wallet_path, obj.passphrase(new=True))
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


@wallet.command("import-key")
@click.argument("source", metavar="FILE|-")
@click.pass_obj
@_errors
def import_key(obj: Context, source: str) -> None:
    """Import the secret key in FILE (64 hex digits, an Ed25519 seed, as a devnet writes in
    keys/faucet.key; "-" reads standard input) and print its address. Its coins are then the
    wallet's."""
    if source == "-":
        if obj.passphrase_file is None and obj.passphrase_fd is None and not os.environ.get(PASSPHRASE_ENV):
            if not sys.stdin.isatty():
                raise click.UsageError("with the key on standard input, give the passphrase another way")
        text = sys.stdin.read(MAX_SECRET_FILE)
    else:
        with Path(source).open() as f:
            text = f.read(MAX_SECRET_FILE)
    try:
        secret = bytes.fromhex(text.strip())
    except ValueError:
        raise click.ClickException(f"{source}: not a hex secret key (64 hex digits)") from None
    passphrase = obj.passphrase()
    store = Keystore.unlock(obj.wallet_path, passphrase)
    if store.params is not obj.params:
        raise click.ClickException(f"the wallet is for {store.params.name}, not {obj.params.name}")
    key = store.import_key(secret)
    store.save(obj.wallet_path, passphrase)
    click.echo(f"imported into {obj.wallet_path}; back up the file again", err=True)
    click.echo(key.address)


@wallet.command()
@click.option("--json", "as_json", is_flag=True, help="Print the node's getbalance answer as JSON.")
@click.option("--sat", is_flag=True, help="Amounts in sat, not TIME.")
@click.pass_obj
@_errors
def balance(obj: Context, as_json: bool, sat: bool) -> None:
    """The wallet's balance at the node's tip (no passphrase needed)."""
    result = obj.node().balance(_addresses(obj))
    if as_json:
        click.echo(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
        return
    click.echo(
        f"balance   {_show(result['balance_sat'], sat)} ({result['coins']} coins, height {result['height']})"
    )
    click.echo(f"available {_show(result['available_sat'], sat)}")
    if result["locked_sat"]:
        click.echo(f"locked    {_show(result['locked_sat'], sat)} (spent by pending transactions)")


@wallet.command()
@click.argument("to")
@click.argument("amount", required=False)
@click.option("--all", "send_all", is_flag=True, help="Send every spendable coin (no AMOUNT), less the fee.")
@click.option(
    "--subtract-fee", is_flag=True, help="Take the fee out of AMOUNT: the payee receives AMOUNT less the fee."
)
@click.option("--sat", is_flag=True, help="AMOUNT, and every amount printed, in sat, not TIME.")
@click.option(
    "--fee-margin",
    default=0,
    show_default=True,
    type=click.IntRange(0, 1_000_000),
    metavar="PERMILLE",
    help="Pay this many thousandths over the minimum fee.",
)
@click.option(
    "--yes",
    "-y",
    "assume_yes",
    is_flag=True,
    help=f"Send without asking even when the fee is over {CONFIRM_FEE_ABOVE // COIN} TIME.",
)
@click.option("--wait", is_flag=True, help="Wait for finality; print the status and the latency.")
@click.option(
    "--wait-timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds to wait for finality.",
)
@click.option("--certificate", is_flag=True, help="With --wait: print the finality certificate (hex) too.")
@click.option(
    "--wait-block",
    is_flag=True,
    help="With --wait: then wait (up to --wait-timeout again) for a block to archive it; print its height.",
)
@click.pass_obj
@_errors
def send(
    obj: Context,
    to: str,
    amount: str | None,
    send_all: bool,
    subtract_fee: bool,
    sat: bool,
    fee_margin: int,
    assume_yes: bool,
    wait: bool,
    wait_timeout: float,
    certificate: bool,
    wait_block: bool,
) -> None:
    """Pay AMOUNT (or --all) to address TO; prints the txid, and with --wait the finality
    status and latency (exit status 1 unless final). A fee over 1 TIME is confirmed first
    (--yes skips the question; without a terminal, --yes is required)."""
    if send_all == (amount is not None):
        raise click.UsageError("give AMOUNT or --all, not both" if send_all else "give AMOUNT or --all")
    if send_all and subtract_fee:
        raise click.UsageError("--all already pays the fee out of the amount sent")
    if (certificate or wait_block) and not wait:
        raise click.UsageError("--certificate and --wait-block need --wait")
    value = 0 if amount is None else _parse_amount(amount, sat)
    passphrase = obj.passphrase()
    store = Keystore.unlock(obj.wallet_path, passphrase)
    if store.params is not obj.params:
        raise click.ClickException(f"the wallet is for {store.params.name}, not {obj.params.name}")
    node = obj.node()
    selection = node.select(
        store, [(to, value)], fee_margin_per_mille=fee_margin, subtract_fee=subtract_fee, send_all=send_all
    )
    if selection.fee > CONFIRM_FEE_ABOVE and not assume_yes:
        question = f"pay a fee of {_show(selection.fee, sat)} to send {_show(selection.paid, sat)}?"
        if obj.stdin_used or not sys.stdin.isatty():
            raise click.ClickException(
                f"the fee of {_show(selection.fee, sat)} is over {_show(CONFIRM_FEE_ABOVE, sat)}: "
                "nothing sent; pass --yes to send it"
            )
        if not click.confirm(question.capitalize(), err=True):
            raise click.ClickException("nothing sent")
    sent = node.submit(selection, node.sign(store, selection))
    change = f", change {_show(sent.change, sat)}" if sent.change else ""
    click.echo(
        f"sent {_show(sent.paid, sat)} to {to}, fee {_show(sent.fee, sat)}{change}, "
        f"{sent.inputs} input{'s' if sent.inputs != 1 else ''}",
        err=True,
    )
    click.echo(sent.txid)
    if not wait:
        return
    status = node.wait_final(sent.txid, wait_timeout)
    state = status.get("status")
    latency_ms = (time.monotonic() - sent.submitted) * 1000
    if state == "final":
        click.echo(f"final in {latency_ms:.0f} ms")
        if certificate:
            if status.get("certificate"):
                click.echo(status["certificate"])
            else:  # final through votes it saw, or a block, without a certificate of its own
                click.echo(f"the node at {obj.endpoint} holds no finality certificate for it", err=True)
        if wait_block:
            height = node.wait_block(sent.txid, wait_timeout)
            if height is None:
                raise click.ClickException(
                    f"transaction {sent.txid} is final but in no block after {wait_timeout:g} s"
                )
            click.echo(f"in block {height}")
        return
    if state == "rejected":
        click.echo(f"rejected after {latency_ms:.0f} ms")
        raise click.ClickException(f"transaction {sent.txid} was rejected: {status.get('reason')}")
    click.echo(f"{state} after {latency_ms:.0f} ms")
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


def _show(sat: int, in_sat: bool = False) -> str:
    """An amount as printed: ``1.50000000 TIME``, or ``150000000 sat`` with ``--sat``."""
    return f"{sat} sat" if in_sat else f"{Decimal(sat) / COIN:.8f} TIME"
