"""The ``timecoin`` command: operator and developer tools.

Subcommands (devnet, loadtest, wallet, db) are added as the parts they drive are built; until
then the command reports versions, including whether the native module is a release build.
"""

from __future__ import annotations

import click

import timecoin


def _version_line() -> str:
    import timecoin_native

    return (
        f"timecoin {timecoin.__version__} "
        f"(timecoin-native {timecoin_native.__version__}, {timecoin_native.build_profile} build)"
    )


@click.group(invoke_without_command=True)
@click.option("--version", is_flag=True, help="Print versions and the native build profile.")
@click.pass_context
def main(ctx: click.Context, version: bool) -> None:
    """TIME Coin node tools."""
    if version:
        click.echo(_version_line())
    elif ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


@click.command()
@click.argument("user")
@click.argument("password", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print {username, password, rpcauth} as JSON.")
def rpcauth(user: str, password: str | None, as_json: bool) -> None:
    """Make an ``rpcauth`` entry for USER: a random salt and the salted HMAC-SHA256 of PASSWORD
    (a random one if not given), as Bitcoin Core's share/rpcauth/rpcauth.py. The node stores only
    the hash; give the password to the client (docs/operator.md, "Authentication")."""
    from timecoin.rpc.cookie import rpcauth_line

    try:
        line, password = rpcauth_line(user, password)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="USER") from None
    if as_json:
        import orjson

        doc = {"username": user, "password": password, "rpcauth": line}
        click.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
        return
    click.echo("Add to timecoin.conf (a list: one entry per user):")
    click.echo(f'rpcauth = ["{line}"]')
    click.echo("or give it to timecoind as:")
    click.echo(f"--rpcauth '{line}'")
    click.echo("Your password:")
    click.echo(password)


def _register() -> None:
    from timecoin.cli.db import db
    from timecoin.cli.devnet import devnet
    from timecoin.cli.masternode import masternode
    from timecoin.cli.testnet import testnet
    from timecoin.cli.wallet import wallet
    from timecoin.e2e.cli import e2e
    from timecoin.loadtest.cli import loadtest

    main.add_command(db)
    main.add_command(devnet)
    main.add_command(e2e)
    main.add_command(loadtest)
    main.add_command(masternode)
    main.add_command(rpcauth)
    main.add_command(testnet)
    main.add_command(wallet)


_register()


if __name__ == "__main__":
    main()
