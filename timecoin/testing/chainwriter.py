"""A process that builds and commits a deterministic chain: the victim of crash tests.

    python -m timecoin.testing.chainwriter DATADIR BLOCKS TXS_PER_BLOCK [SEED]

Creates the devnet chain of :func:`timecoin.testing.chaingen.devnet_genesis` in DATADIR and
connects BLOCKS blocks of TXS_PER_BLOCK transfers, printing ``committed <height>`` after each
commit. The coins are flushed after every :data:`FLUSH_EVERY` blocks in chunks of
:data:`FLUSH_CHUNK` writes, as a node's flusher writes them behind its blocks. Arm a failpoint
(``TIMECOIN_FAILPOINT``) or send SIGKILL to crash it anywhere.
"""

from __future__ import annotations

import sys
from pathlib import Path

from timecoin.ledger.chain import ChainState
from timecoin.ledger.genesis import build_genesis
from timecoin.testing.chaingen import Wallet, devnet_genesis, grow_chain

FLUSH_EVERY = 4
"""Blocks between two coins flushes (so a crash finds up to that many to replay)."""
FLUSH_CHUNK = 16
"""Coin writes per store transaction of a flush (a few transactions per flush)."""


def main(argv: list[str]) -> None:
    datadir, blocks, txs = Path(argv[0]), int(argv[1]), int(argv[2])
    seed = argv[3].encode() if len(argv) > 3 else b"timecoin-dev"
    config, accounts, _ = devnet_genesis(seed)
    chain = ChainState.open(datadir, config.params, build_genesis(config))
    wallet = Wallet.from_genesis(chain, accounts)
    chain.coins.chunk = FLUSH_CHUNK
    for _ in grow_chain(chain, wallet, blocks, txs):
        print("committed", chain.tip.height, flush=True)
        if chain.tip.height % FLUSH_EVERY == 0:
            chain.coins.flush()
    chain.close()


if __name__ == "__main__":
    main(sys.argv[1:])
