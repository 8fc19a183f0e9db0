"""Logs as operators expect them (docs/operator.md "Logs"; issue 16, finding 8).

* The JSON formatter of ``timecoind --log-json`` writes the fields a log call gives with
  ``extra=`` (height, peer, txid, ...) beside ``ts``/``level``/``logger``/``msg``: bytes as hex,
  anything JSON cannot hold as text, and never over the line's own keys.
* A committed block is a debug line, not an info line, with its height, hash, transaction count,
  size and timings as fields: checked on blocks the real consensus commits in a simulation of
  four masternodes (``timecoin.testing.consensus_sim``, through the reference ``EffectRunner``).
"""

from __future__ import annotations

import io
import logging

import orjson

from timecoin.cli.daemon import JSONFormatter
from timecoin.testing.consensus_sim import Simulation


def json_lines(emit) -> list[dict]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JSONFormatter())
    logger = logging.getLogger("timecoin.test.jsonlog")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        emit(logger)
    finally:
        logger.removeHandler(handler)
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_the_fields_of_the_call():
    txid = bytes(range(32))

    def emit(logger: logging.Logger) -> None:
        logger.info("block %d", 12, extra={"height": 12, "peer": 3, "peer_addr": "127.0.0.1:5", "txid": txid})
        logger.warning("odd", extra={"thing": object(), "ts": "not the timestamp", "level": "not the level"})
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed at %d", 7, extra={"height": 7})

    first, second, third = json_lines(emit)
    assert (
        first["msg"] == "block 12" and first["level"] == "info" and first["logger"] == "timecoin.test.jsonlog"
    )
    assert first["height"] == 12 and first["peer"] == 3 and first["peer_addr"] == "127.0.0.1:5"
    assert first["txid"] == txid.hex()
    assert isinstance(first["ts"], float)
    assert set(first) == {"ts", "level", "logger", "msg", "height", "peer", "peer_addr", "txid"}
    assert second["thing"].startswith("<object object")
    assert second["level"] == "warning" and isinstance(second["ts"], float)  # the line's own keys win
    assert third["height"] == 7 and "ValueError: boom" in third["exc"]


def test_committed_block_is_a_debug_line_with_its_fields(tmp_path, caplog):
    sim = Simulation(tmp_path, 4, seed=3).start()
    try:
        with caplog.at_level(logging.DEBUG, logger="timecoin.consensus.runner"):
            assert sim.wait_height(2)
    finally:
        sim.close()
    committed = [r for r in caplog.records if r.getMessage().startswith("committed block")]
    assert committed, "no committed-block line at debug"
    assert all(r.levelno == logging.DEBUG for r in committed)
    heights = set()
    for record in committed:
        fields = vars(record)
        assert {"height", "block", "txs", "bytes", "connect_ms", "consensus_ms"} <= set(fields)
        assert fields["txs"] >= 1 and fields["bytes"] > 0 and len(fields["block"]) == 64
        assert (
            f"committed block {fields['height']} {fields['block']}: {fields['txs']} txs"
            in record.getMessage()
        )
        heights.add(fields["height"])
    assert {1, 2} <= heights

    caplog.clear()
    sim = Simulation(tmp_path / "info", 4, seed=3).start()
    try:
        with caplog.at_level(logging.INFO, logger="timecoin.consensus.runner"):
            assert sim.wait_height(2)
    finally:
        sim.close()
    assert not [r for r in caplog.records if "committed block" in r.getMessage()]  # quiet at info
