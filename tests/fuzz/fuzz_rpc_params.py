"""Atheris harness: arbitrary requests to the JSON-RPC server of a real, started node (devnet,
in process, a two-block chain from :func:`timecoin.testing.node.build_devnet_chain`), through
``RPCServer.process``: the JSON parsing, the envelope, parameter binding (timecoin/rpc/methods.py)
and every method's own checks of its values (timecoin/rpc/*.py).

An input starting with ``{`` or ``[`` is sent as the request body as it is. Any other input is
a request built from its bytes (:func:`request_of`): the first byte picks the method, the second
whether the parameters are positional or named, the rest are the values (nulls, booleans,
integers, strings, hex strings, the chain's own hashes, addresses and transactions, arrays).

The contract (docs/fuzzing.md): the server answers every request with JSON and never with
``INTERNAL_ERROR`` (-32603), which it sends only when a handler raised something other than an
``RPCError``: a bad parameter is the client's error, reported with its code. Calls that wait by
design (``waitfornewblock``, ``waittransactionfinality``, ...) are cut after
:data:`CALL_BOUND` seconds. ``sendrawtransaction`` and ``submitblock`` get only bytes the node
refuses (the chain's own, already committed), so the node's state does not drift under the
fuzzer; ``stop`` only sets a flag nothing waits on here.

Run: ``python tests/fuzz/fuzz_rpc_params.py [libFuzzer flags] [corpus dirs]``. The node's data
directory is ``$TIMECOIN_FUZZ_DIR`` if set, else a fresh temporary directory (left behind when
libFuzzer exits). ``check_input`` is importable without atheris; the node starts on its first
call (or with :func:`start`, and :func:`stop` stops it).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

with (
    contextlib.nullcontext()
    if __name__ != "__main__"
    else __import__("atheris").instrument_imports(include=["timecoin"])
):
    import orjson

    from timecoin.config import load_config
    from timecoin.core.address import address_of_key
    from timecoin.core.types import Block
    from timecoin.node import Node
    from timecoin.params import DEVNET
    from timecoin.rpc.errors import INTERNAL_ERROR
    from timecoin.rpc.methods import load_methods
    from timecoin.rpc.server import RPCServer
    from timecoin.testing.node import DevnetChain, build_devnet_chain, write_chain

CALL_BOUND = 0.05
"""Seconds one request may take before it is cancelled (waiting methods wait by design)."""
BLOCKS = 2
"""Blocks on the node's chain above genesis (each with two transfers)."""
MAX_DEPTH = 3
"""Nesting of arrays in a built request."""
METHOD_NAMES = sorted(load_methods())


@dataclasses.dataclass
class _Harness:
    loop: asyncio.AbstractEventLoop
    node: Node
    server: RPCServer
    known: list[Any]
    """Values of the node's own chain a built request can name (hashes, txids, addresses, the
    raw hex of committed blocks and transactions)."""
    errors: list[logging.LogRecord]
    """Records the server logged for a handler's unexpected exception."""
    capture: logging.Handler


class _Capture(logging.Handler):
    def __init__(self, sink: list[logging.LogRecord]) -> None:
        super().__init__(logging.ERROR)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(record)


def _known_values(chain: DevnetChain) -> list[Any]:
    values: list[Any] = [chain.genesis.hash.hex()]
    for raw in chain.blocks:
        block = Block.decode(raw)
        values += [block.header.hash.hex(), raw.hex(), block.header.encode().hex()]
        for tx in block.transactions:
            values += [tx.txid.hex(), tx.encode().hex()]
    values += [address_of_key(k, DEVNET) for k in _public_keys(chain.account_keys[:2])]
    values += [k.hex() for k in _public_keys(chain.masternode_keys[:2])]
    return values


def _public_keys(seeds: list[bytes]) -> list[bytes]:
    from timecoin import crypto

    return [crypto.public_key(s) for s in seeds]


def start(root: Path) -> _Harness:
    """Builds the chain and starts the node under ``root`` (a new directory or an empty one);
    :func:`check_input` then uses it until :func:`stop`."""
    global _harness
    assert _harness is None, "the harness node is already running"
    chain = build_devnet_chain(root / "chain", BLOCKS, 2)
    datadir = root / "node"
    write_chain(datadir, chain, BLOCKS)
    config = load_config(
        {
            "network": "devnet",
            "datadir": str(datadir),
            "genesis": str(chain.genesis_file),
            "listen": "127.0.0.1",
        },
        env={},
        home=root,
    )
    node = Node(dataclasses.replace(config, port=0, rpcport=0))
    loop = asyncio.new_event_loop()
    loop.run_until_complete(node.start())
    assert node.rpc is not None
    errors: list[logging.LogRecord] = []
    capture = _Capture(errors)
    logging.getLogger("timecoin.rpc.server").addHandler(capture)
    _harness = _Harness(loop, node, node.rpc, _known_values(chain), errors, capture)
    return _harness


def stop() -> None:
    """Stops the node :func:`start` started (nothing if none runs)."""
    global _harness
    h, _harness = _harness, None
    if h is not None:
        logging.getLogger("timecoin.rpc.server").removeHandler(h.capture)
        h.loop.run_until_complete(h.node.stop())
        h.loop.close()


_harness: _Harness | None = None


def harness() -> _Harness:
    """The running node; started on the first call under ``$TIMECOIN_FUZZ_DIR`` or a fresh
    temporary directory."""
    if _harness is None:
        root = os.environ.get("TIMECOIN_FUZZ_DIR") or tempfile.mkdtemp(prefix="timecoin-fuzz-rpc-")
        return start(Path(root))
    return _harness


class _Bytes:
    """Sequential reads over the input; past the end every read is zero."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def more(self) -> bool:
        return self.pos < len(self.data)

    def take(self, n: int) -> bytes:
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out.ljust(n, b"\0")

    def byte(self) -> int:
        return self.take(1)[0]


def _value(r: _Bytes, known: list[Any], depth: int) -> Any:
    tag = r.byte() % 9
    if tag == 0:
        return None
    if tag == 1:
        return bool(r.byte() & 1)
    if tag == 2:
        return r.byte() - 8  # small integers, negatives included
    if tag == 3:
        return int.from_bytes(r.take(8), "little", signed=r.byte() & 1 == 1)
    if tag == 4:
        return r.take(r.byte() % 80).decode("latin-1")
    if tag == 5:
        return r.take(r.byte() % 80).hex()
    if tag == 6:
        return known[r.byte() % len(known)]
    if tag == 7:
        return int.from_bytes(r.take(2), "little") / 7.0
    n = r.byte() % 5
    return [_value(r, known, depth + 1) for _ in range(n)] if depth < MAX_DEPTH else []


def request_of(data: bytes, known: list[Any]) -> bytes:
    """The request body ``data`` stands for (module docstring)."""
    if data[:1] in (b"{", b"["):
        return data
    r = _Bytes(data)
    name = METHOD_NAMES[r.byte() % len(METHOD_NAMES)]
    named = r.byte() & 1
    values: list[Any] = []
    while r.more() and len(values) < 8:
        values.append(_value(r, known, 0))
    params: list[Any] | dict[str, Any] = values
    if named:
        names = [p.name for p in load_methods()[name].params]
        params = {names[i] if i < len(names) else f"extra{i}": v for i, v in enumerate(values)}
    return orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": name, "params": params})


async def _process(server: RPCServer, body: bytes) -> bytes | None:
    try:
        async with asyncio.timeout(CALL_BOUND):
            return await server.process(body)
    except TimeoutError:
        return None


def _replies(reply: bytes) -> list[Any]:
    doc = orjson.loads(reply)
    return doc if isinstance(doc, list) else [doc]


def check_input(data: bytes) -> None:
    if not data:
        return
    h = harness()
    body = request_of(data, h.known)
    h.errors.clear()
    reply = h.loop.run_until_complete(_process(h.server, body))
    if reply is None:
        return
    for item in _replies(reply):
        error = item.get("error") if isinstance(item, dict) else None
        if isinstance(error, dict) and error.get("code") == INTERNAL_ERROR:
            detail = "\n".join(
                logging.Formatter().formatException(r.exc_info) for r in h.errors if r.exc_info
            )
            raise AssertionError(f"INTERNAL_ERROR for request {body[:500]!r}:\n{detail}")


def main() -> None:
    import atheris  # type: ignore[import-untyped]

    atheris.Setup(sys.argv, check_input)
    harness()
    atheris.Fuzz()


if __name__ == "__main__":
    main()
