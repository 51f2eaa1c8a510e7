"""Market data in, signals out: what the fault tests and the soak need to run the featurizer in the loop.

- ``Market``: a simulated market of ``symbols`` random walks, one market second at a time, as
  (subject, payload, Nats-Msg-Id) for md.trades.* / md.quotes.*, in the order the featurizer
  consumes (``feature_store.tick.events``: ts, quotes before trades, seq). Event times start at a
  regular session's open, so every second is in session; replay speed is the caller's.
- ``CleanFeaturizer``: the same ticks through an in-process ``TickFeaturizer`` (no NATS, no
  faults): the (symbol, seq) of every FeatureUpdate the streaming featurizer must publish.
- ``export_tick_v2``: a small PriceTransformer fitted for a few steps on random windows of
  ``tick_v2`` and exported through ``training.onnx_export`` (golden vectors, metadata): a valid
  contract model for the scorer. Its forecasts mean nothing; this is a delivery test.
- ``replay_sizing``: the contract's sizing with the staleness guard off (the ticks are history)
  and no feature-bound caps (tick_v2 has no annualised vol or ADV feature).
- ``publish_in_order``: publish a batch through JetStream until every message is acked, re-sending
  from the first failure on in order with the same ids, so the stream holds each once, in order.
"""

from __future__ import annotations

import asyncio
import json
import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from core.resources import contracts_dir
from core.timetypes import NS_PER_S
from feature_store.registry import get
from feature_store.streaming import market_data as md
from feature_store.streaming.state import TickFeaturizer

SESSION_OPEN = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)  # a Monday: NYSE open 09:30 New York
TICK_V2 = get("tick_v2")
MODEL_NAME = "soak_tick"


class Market:
    """Random-walk trades and one-sided quotes for ``symbols`` symbols, ``rate`` events per symbol-second."""

    def __init__(self, symbols: int, rate: float = 1.0, seed: int = 7, open_: datetime = SESSION_OPEN) -> None:
        self.names = [f"S{i:04d}:US" for i in range(symbols)]
        self.rate = rate
        self.rng = np.random.default_rng(seed)
        self.mid = 20.0 + 0.5 * np.arange(symbols)
        self.t0 = int(open_.timestamp()) * NS_PER_S + NS_PER_S  # the first second after the open
        self.second = 0
        self.seq = 0

    def now_ns(self) -> int:
        """Event time of the start of the next second ``next_second`` will produce."""
        return self.t0 + self.second * NS_PER_S

    def next_second(self) -> list[tuple[str, int, str, bytes, str]]:
        """One market second: (symbol, ts, subject, payload, msg id) in the featurizer's order."""
        rng, n_sym = self.rng, len(self.names)
        counts = rng.poisson(self.rate, n_sym)
        if self.second == 0:
            counts = np.maximum(counts, 2)  # every symbol starts with a quote and a trade: it is active at once
        sym = np.repeat(np.arange(n_sym), counts)
        t = self.now_ns() + rng.integers(0, 1000, sym.size) * 1_000_000
        trade = rng.random(sym.size) < 0.3
        if self.second == 0:
            first = np.r_[0, np.cumsum(counts)[:-1]]
            trade[first], trade[first + 1] = False, True
        order = np.lexsort((np.arange(sym.size), trade, t))  # ts, quotes before trades, then generation order
        out = []
        for i in order:
            s, ts = int(sym[i]), int(t[i])
            self.mid[s] = max(1.0, round(float(self.mid[s]) + float(rng.choice((-0.01, 0.0, 0.0, 0.01))), 2))
            name, mid = self.names[s], float(self.mid[s])
            if trade[i]:
                price = round(mid + float(rng.choice((-0.005, 0.005))), 3)
                size = float(rng.choice((100.0, 200.0, 500.0, 20_000.0)))
                subject, payload = md.md_subject(md.TRADE, name), md.encode_trade(name, ts, price, size, self.seq)
            elif rng.random() < 0.5:
                subject = md.md_subject(md.QUOTE, name)
                payload = md.encode_quote(name, ts, round(mid - 0.005, 3), 300.0, None, None, self.seq)
            else:
                subject = md.md_subject(md.QUOTE, name)
                payload = md.encode_quote(name, ts, None, None, round(mid + 0.005, 3), 300.0, self.seq)
            out.append((name, ts, subject, payload, f"md.{self.seq}"))
            self.seq += 1
        self.second += 1
        return out


class CleanFeaturizer:
    """The published ticks through ``TickFeaturizer`` in process: the updates a faultless run publishes."""

    def __init__(self) -> None:
        self.f = TickFeaturizer(TICK_V2)
        self.keys: set[tuple[str, int]] = set()

    def feed(self, events: list[tuple[str, int, str, bytes, str]]) -> None:
        for _, _, subject, payload, _ in events:
            kind = md.kind_of(subject)
            m = md.decode(payload, kind)
            if kind == md.TRADE:
                self.f.on_trade(m["symbol_id"], m["ts"], float(m["price"]), float(m["size"]))
            else:
                self.f.on_quote(m["symbol_id"], m["ts"], m["bid"], m["bid_size"], m["ask"], m["ask_size"])
        self._take()

    def expected(self) -> set[tuple[str, int]]:
        """Every row closed once the input pauses (the streaming service drains the same way)."""
        self.f.drain()
        self._take()
        return self.keys

    def _take(self) -> None:
        rows, self.f.out = self.f.out, []
        for symbol, ts, values in rows:
            assert all(math.isfinite(v) for v in values), (symbol, ts)
            self.keys.add((symbol, ts // NS_PER_S))


async def publish_in_order(js, items: list[tuple[str, bytes, str]], timeout: float = 1.0) -> int:
    """Publish (subject, payload, msg id) through JetStream until all are acked; return the re-send rounds.

    The server stores a connection's messages in arrival order, so after a failure everything from
    it on goes again in order; what was stored already is dropped by ``Nats-Msg-Id``.
    """
    rounds = 0
    while items:
        results = await asyncio.gather(
            *(js.publish(s, p, timeout=timeout, headers={"Nats-Msg-Id": i}) for s, p, i in items),
            return_exceptions=True,
        )
        failed = next((k for k, r in enumerate(results) if isinstance(r, BaseException)), None)
        if failed is None:
            return rounds
        items, rounds = items[failed:], rounds + 1
        await asyncio.sleep(0.05)
    return rounds


def replay_sizing(out_dir: Path) -> Path:
    """contracts/sizing.json with the staleness guard off and no vol/ADV feature (tick_v2 has neither)."""
    cfg = json.loads((contracts_dir() / "sizing.json").read_text())
    cfg.update(max_staleness_ms=0, realized_vol_feature=None, adv_feature=None)
    path = Path(out_dir) / "sizing_soak.json"
    path.write_text(json.dumps(cfg, indent=2))
    return path


LOOKBACK, HORIZONS, N_BUCKETS = 16, (1, 10, 60), 21


def tick_v2_metadata():
    """Contract metadata of the soak's tick_v2 models (sizing horizon 60 s among the horizons)."""
    from feature_store.model_contract import ModelMetadata
    from training.models.base import default_edges_bps

    return ModelMetadata(
        model_name=MODEL_NAME,
        model_version="1",
        feature_set=TICK_V2.name,
        feature_names=tuple(f.name for f in TICK_V2.features),
        lookback=LOOKBACK,
        horizons=HORIZONS,
        horizon_unit="s",
        tf=TICK_V2.tf,
        bucket_edges_bps=tuple(float(e) for e in default_edges_bps(N_BUCKETS, -20.0, 20.0)),
        calibration_temperatures=(1.0,) * len(HORIZONS),
        conformal_qhat_bps=(0.0,) * len(HORIZONS),
    )


def export_tick_v2_graph(out_dir: Path) -> Path:
    """A linear softmax over the window's mean features, built as an ONNX graph and saved by ``finish_export``.

    Instant (no torch), so the fast fault test can afford it; ``export_tick_v2`` is the torch path.
    """
    from onnx import TensorProto, helper, numpy_helper

    from training.onnx_export import finish_export

    meta = tick_v2_metadata()
    f, h = len(meta.feature_names), len(HORIZONS)
    rng = np.random.default_rng(0)
    w = rng.normal(0.0, 0.01, (f, h * N_BUCKETS)).astype(np.float32)
    b = rng.normal(0.0, 0.1, (h * N_BUCKETS,)).astype(np.float32)
    nodes = [
        helper.make_node("ReduceMean", ["features", "axis1"], ["mean"], keepdims=0),
        helper.make_node("MatMul", ["mean", "w"], ["xw"]),
        helper.make_node("Add", ["xw", "b"], ["logits"]),
        helper.make_node("Reshape", ["logits", "shape"], ["logits3"]),
        helper.make_node("Softmax", ["logits3"], ["probs"], axis=-1),
    ]
    inits = [
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        numpy_helper.from_array(w, "w"),
        numpy_helper.from_array(b, "b"),
        numpy_helper.from_array(np.array([-1, h, N_BUCKETS], dtype=np.int64), "shape"),
    ]
    graph = helper.make_graph(
        nodes,
        "soak_tick_linear",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", LOOKBACK, f])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", h, N_BUCKETS])],
        inits,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)

    def reference(x: np.ndarray) -> np.ndarray:
        z = (x.mean(axis=1) @ w + b).reshape(-1, h, N_BUCKETS)
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    x = rng.normal(0.0, 1.0, (4, LOOKBACK, f)).astype(np.float32)
    return finish_export(proto, meta, Path(out_dir) / "model", x, reference)


def export_tick_v2(out_dir: Path) -> Path:
    """Fit a tiny PriceTransformer for one epoch on random tick_v2 windows; export it through torch."""
    import torch

    from training.factory import return_feature
    from training.models.base import Buckets
    from training.models.transformer import PriceTransformer, TransformerConfig
    from training.onnx_export import export_model

    meta = tick_v2_metadata()
    names = meta.feature_names
    buckets = Buckets(np.asarray(meta.bucket_edges_bps))
    rng = np.random.default_rng(0)
    X = rng.normal(0.0, 1.0, (96, LOOKBACK, len(names))).astype(np.float32)
    y = rng.integers(0, buckets.k, (96, len(HORIZONS)))
    cfg = TransformerConfig(
        d_model=8, n_heads=2, n_layers=1, d_ff=16, max_epochs=1, batch_size=48, warmup_steps=1,
        val_fraction=0.25, val_gap=0, num_threads=1, ret_feature=return_feature(names),
    )  # fmt: skip
    model = PriceTransformer(buckets, cfg).fit(X, y)
    module = model.to_torch_module().eval()
    return export_model(module, meta, Path(out_dir) / "model", torch.from_numpy(X[:4]), parity_inputs=X[:32])
