// The TIME Coin node dashboard (docs/operator.md, "Dashboard"): reads the node's event stream
// (/ui/events: one "history" event, then a "snapshot" a second) and draws it. Read-only: it
// sends nothing to the node and holds no credentials. Text goes in through textContent only
// (peer addresses and the like are data, never markup).
"use strict";

(function () {
  const HISTORY = 300; // points kept per chart: the node's HISTORY_SAMPLES (five minutes)
  const CHART_HEIGHT = 220;
  const HASH_CHARS = 16;

  const points = { t: [], tps: [], p50: [], p95: [], p99: [] };
  const charts = {};
  let snapshots = 0;

  function $(id) {
    return document.getElementById(id);
  }

  function setText(id, value) {
    $(id).textContent = value === null || value === undefined ? "–" : String(value);
  }

  function short(hex) {
    return hex ? hex.slice(0, HASH_CHARS) + "…" : "–";
  }

  function bytes(n) {
    if (n === null || n === undefined) return "–";
    const units = ["B", "kB", "MB", "GB", "TB"];
    let i = 0;
    while (n >= 1000 && i < units.length - 1) {
      n /= 1000;
      i += 1;
    }
    return (i === 0 ? String(n) : n.toFixed(1)) + " " + units[i];
  }

  function ago(unixSeconds, now) {
    if (unixSeconds === null || unixSeconds === undefined) return "–";
    const s = Math.max(0, now - unixSeconds);
    if (s < 120) return s + " s ago";
    if (s < 7200) return Math.floor(s / 60) + " min ago";
    return Math.floor(s / 3600) + " h ago";
  }

  function clock(unixSeconds) {
    return new Date(unixSeconds * 1000).toLocaleTimeString();
  }

  function fixed(value, digits) {
    return value === null || value === undefined ? "–" : Number(value).toFixed(digits);
  }

  function setStatus(kind, text) {
    const el = $("status");
    el.className = "status " + kind;
    el.textContent = text;
  }

  // -- charts (uPlot, vendored: static/vendor/README.md) -------------------------------------------

  function makeChart(id, series, yLabel) {
    const el = $(id);
    const opts = {
      width: Math.max(300, el.clientWidth),
      height: CHART_HEIGHT,
      scales: { x: { time: true } },
      series: [{}].concat(series),
      axes: [{}, { label: yLabel }],
      legend: { live: false },
    };
    const data = [[]].concat(series.map(function () { return []; }));
    charts[id] = { plot: new uPlot(opts, data, el), el: el };
  }

  function drawCharts() {
    charts["chart-tps"].plot.setData([points.t, points.tps]);
    charts["chart-latency"].plot.setData([points.t, points.p50, points.p95, points.p99]);
  }

  function addPoint(p) {
    const last = points.t.length ? points.t[points.t.length - 1] : null;
    if (last !== null && p.t <= last) return;
    points.t.push(p.t);
    points.tps.push(p.tps);
    points.p50.push(p.p50_ms);
    points.p95.push(p.p95_ms);
    points.p99.push(p.p99_ms);
    if (points.t.length > HISTORY) {
      for (const k in points) points[k].splice(0, points[k].length - HISTORY);
    }
  }

  // -- tables ---------------------------------------------------------------------------------------

  function fillTable(id, rows, cells) {
    const body = $(id).tBodies[0];
    const fresh = document.createElement("tbody");
    for (const row of rows) {
      const tr = document.createElement("tr");
      for (const [text, cls] of cells(row)) {
        const td = document.createElement("td");
        td.textContent = text === null || text === undefined ? "–" : String(text);
        if (cls) td.className = cls;
        tr.appendChild(td);
      }
      fresh.appendChild(tr);
    }
    body.replaceWith(fresh);
  }

  // -- snapshot -------------------------------------------------------------------------------------

  function show(s) {
    if (s.warmup) {
      setStatus("warmup", "node: " + s.warmup);
      return;
    }
    setStatus("live", "live · " + clock(s.time));
    setText("network", s.network);
    const tip = s.tip;
    setText("tip-height", tip.height);
    $("tip-hash").textContent = short(tip.hash);
    $("tip-age").textContent = (tip.syncing ? "syncing to " + tip.headers + " · " : "") + ago(tip.time, s.time);

    const f = s.finality;
    setText("finality-tps", f ? fixed(f.tps, 1) : null);
    setText("finality-total", f ? f.finalized : null);
    setText("finality-p50", f ? fixed(f.p50_ms, 1) : null);
    setText("finality-p95", f ? fixed(f.p95_ms, 1) : null);
    setText("finality-p99", f ? fixed(f.p99_ms, 1) : null);

    setText("mempool-size", s.mempool.size);
    $("mempool-bytes").textContent = bytes(s.mempool.bytes) + " of " + bytes(s.mempool.maxmempool);

    const peers = s.peers;
    setText("peer-count", peers ? peers.count : null);
    $("peer-directions").textContent = peers ? peers.in + " in · " + peers.out + " out" : "P2P off";

    const mn = s.masternodes;
    setText("masternodes-online", mn.online + " / " + mn.count);
    $("masternodes-detail").textContent = "online · " + mn.eligible + " eligible";

    const r = s.round;
    $("consensus-round").textContent = r ? "height " + r.height + " · round " + r.round + " · " + r.step : "–";
    const gate = s.gate;
    const gateEl = $("consensus-gate");
    if (!gate) {
      gateEl.textContent = "";
    } else if (gate.open) {
      gateEl.textContent = "production gate open (" + gate.online + "/" + gate.required + ")";
      gateEl.className = "ok";
    } else {
      gateEl.textContent = "gate closed: " + gate.reason;
      gateEl.className = "bad";
    }

    fillTable("blocks", s.blocks, function (b) {
      return [
        [b.height, "num"],
        [short(b.hash), "mono"],
        [clock(b.time), null],
        [b.txs, "num"],
        [bytes(b.size), "num"],
        [b.round, "num"],
        [short(b.proposer), "mono"],
      ];
    });
    fillTable("peers", peers ? peers.rows : [], function (p) {
      return [
        [p.id, "num"],
        [p.addr, "mono"],
        [p.inbound ? "in" : "out", null],
        [p.masternode ? short(p.masternode) : "–", "mono"],
        [p.height, "num"],
        [fixed(p.pingtime_ms, 1), "num"],
        [bytes(p.bytessent), "num"],
        [bytes(p.bytesrecv), "num"],
      ];
    });
    fillTable("masternodes", mn.rows, function (m) {
      const status = m.online === null ? "–" : m.online ? "online" : "offline";
      return [
        [short(m.public_key), "mono"],
        [m.tier, null],
        [m.weight, "num"],
        [m.eligible ? status : status + ", ineligible", m.online ? "ok" : "bad"],
        [ago(m.last_seen, s.time), null],
        [m.last_paid_height, "num"],
      ];
    });

    addPoint(s.point);
    drawCharts();
    snapshots += 1;
    document.body.dataset.snapshots = String(snapshots);
  }

  function start() {
    makeChart("chart-tps", [{ label: "finalized tx/s", stroke: "#1f8a4c", fill: "rgba(31,138,76,0.12)", width: 2 }], "tx/s");
    makeChart(
      "chart-latency",
      [
        { label: "p50", stroke: "#2f6fde", width: 2 },
        { label: "p95", stroke: "#b4580b", width: 2 },
        { label: "p99", stroke: "#b42318", width: 2 },
      ],
      "ms",
    );
    window.addEventListener("resize", function () {
      for (const id in charts) charts[id].plot.setSize({ width: Math.max(300, charts[id].el.clientWidth), height: CHART_HEIGHT });
    });

    const source = new EventSource("/ui/events");
    source.addEventListener("open", function () { setStatus("live", "live"); });
    source.addEventListener("error", function () { setStatus("down", "disconnected: retrying…"); });
    source.addEventListener("history", function (e) {
      for (const p of JSON.parse(e.data)) addPoint(p);
      drawCharts();
    });
    source.addEventListener("snapshot", function (e) { show(JSON.parse(e.data)); });

    // For tests and the curious: the charts and their data (read-only use).
    window.timecoinDashboard = { charts: charts, points: points };
  }

  document.addEventListener("DOMContentLoaded", start);
})();
