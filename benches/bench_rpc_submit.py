"""Transaction submission over RPC: hex JSON-RPC (``sendrawtransactions``) against the binary
endpoint (``POST /rawtransactions``, :mod:`timecoin.rpc.rawbatch`), on identical inputs in one
run (issue 13 item 8; docs/benchmarks.md, "RPC submission").

The batch is 1,000 signed one-input one-output transfers (197 bytes each), the load generator's
shape. Each benchmark runs exactly the code both sides run, without the HTTP transport (the
same for both) and without admission (the same function for both):

* ``submit-1k``: the client encodes the batch and the server decodes it back to encoded
  transactions. Hex JSON: ``bytes.hex`` per transaction and ``orjson.dumps`` of the JSON-RPC
  request (:class:`~timecoin.rpc.client.RPCClient`), then ``orjson.loads``, the method table's
  parameter binding and ``parse_hexstrings`` (what ``RPCServer.process`` and
  ``sendrawtransactions`` do). Binary: ``encode_batch``, then ``decode_batch``. Encode and decode
  are also measured alone.
* ``reply-1k``: the server encodes the verdicts of 1,000 accepted transactions and the client
  decodes them: ``sendrawtransactions``' JSON-RPC reply of ``{"txid", "accepted", "reject"}``
  objects against the compact ``{"txids", "rejects"}`` reply, decoded to the same per-transaction
  verdicts.

Each benchmark records its correctness check (decoded transactions or verdicts equal to the
input) in ``extra_info`` and asserts it. The batch comes from :mod:`workloads` (shared with asv).
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import workloads

from timecoin.core.types import Transaction
from timecoin.rpc import rawbatch
from timecoin.rpc.methods import load_methods
from timecoin.rpc.rawtransactions import MAX_BATCH, parse_hexstrings

TXS = 1_000


@pytest.fixture(scope="module")
def raws() -> list[bytes]:
    return workloads.submit_raws(TXS)


def _record(benchmark: Any, ok: bool, body: int) -> None:
    benchmark.extra_info["correct"] = ok
    benchmark.extra_info["items"] = TXS
    benchmark.extra_info["body_bytes"] = body
    assert ok


# -- the two paths, as client and server run them -----------------------------------------------


def json_encode(raws: list[bytes]) -> bytes:
    return orjson.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "sendrawtransactions", "params": [[r.hex() for r in raws]]}
    )


_SENDRAWTRANSACTIONS = load_methods()["sendrawtransactions"]


def json_decode(body: bytes) -> list[bytes]:
    request = orjson.loads(body)
    (hexstrings,) = _SENDRAWTRANSACTIONS.bind(request["params"])
    return parse_hexstrings(hexstrings)  # type: ignore[arg-type]


def binary_encode(raws: list[bytes]) -> bytes:
    return rawbatch.encode_batch(raws)


def binary_decode(body: bytes) -> list[bytes]:
    return rawbatch.decode_batch(body, MAX_BATCH)


# -- submit-1k ----------------------------------------------------------------------------------


@pytest.mark.benchmark(group="submit-1k")
def test_submit_hex_json(benchmark: Any, raws: list[bytes]) -> None:
    got = benchmark(lambda: json_decode(json_encode(raws)))
    _record(benchmark, got == raws, len(json_encode(raws)))


@pytest.mark.benchmark(group="submit-1k")
def test_submit_binary(benchmark: Any, raws: list[bytes]) -> None:
    got = benchmark(lambda: binary_decode(binary_encode(raws)))
    _record(benchmark, got == raws, len(binary_encode(raws)))


@pytest.mark.benchmark(group="submit-1k-encode")
def test_encode_hex_json(benchmark: Any, raws: list[bytes]) -> None:
    body = benchmark(json_encode, raws)
    _record(benchmark, json_decode(body) == raws, len(body))


@pytest.mark.benchmark(group="submit-1k-encode")
def test_encode_binary(benchmark: Any, raws: list[bytes]) -> None:
    body = benchmark(binary_encode, raws)
    _record(benchmark, binary_decode(body) == raws, len(body))


@pytest.mark.benchmark(group="submit-1k-decode")
def test_decode_hex_json(benchmark: Any, raws: list[bytes]) -> None:
    body = json_encode(raws)
    got = benchmark(json_decode, body)
    _record(benchmark, got == raws, len(body))


@pytest.mark.benchmark(group="submit-1k-decode")
def test_decode_binary(benchmark: Any, raws: list[bytes]) -> None:
    body = binary_encode(raws)
    got = benchmark(binary_decode, body)
    _record(benchmark, got == raws, len(body))


# -- reply-1k -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def txids(raws: list[bytes]) -> list[str]:
    return [Transaction.decode(r).txid.hex() for r in raws]


def _expected(txids: list[str]) -> list[dict[str, Any]]:
    return [{"txid": t, "accepted": True, "reject": None} for t in txids]


@pytest.mark.benchmark(group="reply-1k")
def test_reply_json(benchmark: Any, txids: list[str]) -> None:
    def round_trip() -> list[dict[str, Any]]:
        result = [{"txid": t, "accepted": True, "reject": None} for t in txids]
        body = orjson.dumps({"jsonrpc": "2.0", "result": result, "id": 1})
        return orjson.loads(body)["result"]  # type: ignore[no-any-return]

    got = benchmark(round_trip)
    body = orjson.dumps({"jsonrpc": "2.0", "result": _expected(txids), "id": 1})
    _record(benchmark, got == _expected(txids), len(body))


@pytest.mark.benchmark(group="reply-1k")
def test_reply_compact(benchmark: Any, txids: list[str]) -> None:
    def round_trip() -> tuple[list[str | None], dict[int, tuple[int, str]]]:
        return rawbatch.decode_reply(rawbatch.encode_reply(list(txids), []), TXS)

    got = benchmark(round_trip)
    ok = rawbatch.expand_reply(*got) == _expected(txids)
    _record(benchmark, ok, len(rawbatch.encode_reply(list(txids), [])))
