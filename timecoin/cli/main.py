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


def _register() -> None:
    from timecoin.cli.db import db
    from timecoin.cli.devnet import devnet
    from timecoin.cli.wallet import wallet
    from timecoin.e2e.cli import e2e
    from timecoin.loadtest.cli import loadtest

    main.add_command(db)
    main.add_command(devnet)
    main.add_command(e2e)
    main.add_command(loadtest)
    main.add_command(wallet)


_register()


if __name__ == "__main__":
    main()
