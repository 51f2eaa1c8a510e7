"""The per-second tick feature set ``tick_v2``, declared once in the registry.

Every feature is a ``FeatureDef`` whose ``params["kind"]`` names its formula and whose other params
(``n``, ``w``) its window; the batch path (``feature_store.tick.batch``) and the streaming
featurizer (``feature_store.streaming.state``) both dispatch on ``kind`` and read the windows from
here, so adding ``ret_15s`` to the tuple below is enough for both.

Rows are seconds (``ts`` = the end of the second; a second covers ``(ts - 1 s, ts]``) of one symbol
in one exchange session: from the second of the symbol's first trade in the session to the session
close, or to the last second seen in the input if that is earlier. Overnight is never bridged:
every window and every carried value (last price, per-exchange quotes) starts afresh at each open.

Kinds (w, n in seconds = rows; "window sums" are over the last ``min(w, rows so far)`` rows):
- ``ret``: log(last trade price now) - log(last trade price n rows ago; the first row's price before);
- ``tick_imb`` / ``quote_imb``: signed volume / volume over w, signs by the tick rule (zero tick keeps
  the last sign, the session's first trade is 0) or Lee-Ready's quote rule (above the NBBO mid +1,
  below -1, at the mid or with no valid NBBO the tick rule);
- ``log_size_mean`` / ``log_size_std``: mean and population std of log(trade size) over w;
- ``block_share``: share of the volume over w traded in prints of at least ``block_size`` shares;
- ``trade_rate`` / ``quote_rate``: trades (quote updates) per second over w; ``log_volume``: log(1 + volume over w);
- ``spread_bps``, ``microprice_bps`` (microprice vs mid), ``book_imbalance``: NBBO at the second's end
  (best bid/ask over the exchanges' latest quotes this session, sizes summed at the best; 0 while
  there is no NBBO or it is crossed);
- ``mid_rv``: sqrt(mean over w of r^2 * seconds per year), r = 1 s mid log return (0 where either mid is missing);
- ``secs_since_open`` / ``secs_to_close``: from the exchange calendar's session.

``stream_tolerance`` bounds ``|stream - batch| / max(1, |batch|)`` (``parity_error``).
"""

from __future__ import annotations

from feature_store.registry import FeatureDef, FeatureSet, register

FEATURE_SET = "tick_v2"
TF = "1s"
TRADES = "bronze.trades"
QUOTES = "bronze.quotes"
CALENDAR = "calendar"
RETURN_HORIZONS = (1, 5, 10, 30, 60, 120, 300, 600)
FLOW_WINDOWS = (10, 60, 300)
BLOCK_SIZE = 10_000.0  # shares: a print at least this big is a block
YEAR_SECONDS = 252 * 23_400.0  # regular XNYS trading seconds per year (annualises mid_rv)


def _def(name: str, kind: str, table: str, columns: tuple[str, ...], window: int, doc: str, **params) -> FeatureDef:
    return FeatureDef(
        name,
        params={"kind": kind, **params},
        input_table=table,
        input_columns=columns,
        window=window,
        description=doc,
        stream_tolerance=1e-9,
    )


def _features() -> tuple[FeatureDef, ...]:
    t, q = ("price", "size"), ("bid", "bid_size", "ask", "ask_size", "exchange")
    feats = [_def(f"ret_{n}s", "ret", TRADES, t[:1], n + 1, f"log return of the last trade over {n} s", n=n)
             for n in RETURN_HORIZONS]  # fmt: skip
    for w in FLOW_WINDOWS:
        feats.append(_def(f"tick_imb_{w}s", "tick_imb", TRADES, t, w, f"tick-rule signed volume share over {w} s", w=w))
    for w in FLOW_WINDOWS:
        feats.append(
            _def(f"quote_imb_{w}s", "quote_imb", TRADES, t + q[:4], w, f"Lee-Ready signed volume share, {w} s", w=w)
        )
    feats += [
        _def("log_size_mean_60s", "log_size_mean", TRADES, t[1:], 60, "mean log trade size over 60 s", w=60),
        _def("log_size_std_60s", "log_size_std", TRADES, t[1:], 60, "std of log trade size over 60 s", w=60),
        _def(
            "block_share_60s",
            "block_share",
            TRADES,
            t[1:],
            60,
            "volume share of block prints over 60 s",
            w=60,
            block_size=BLOCK_SIZE,
        ),
        _def("trade_rate_10s", "trade_rate", TRADES, (), 10, "trades per second over 10 s", w=10),
        _def("trade_rate_60s", "trade_rate", TRADES, (), 60, "trades per second over 60 s", w=60),
        _def("quote_rate_60s", "quote_rate", QUOTES, (), 60, "quote updates per second over 60 s", w=60),
        _def("log_volume_60s", "log_volume", TRADES, t[1:], 60, "log(1 + shares traded over 60 s)", w=60),
        _def("spread_bps", "spread_bps", QUOTES, q, 1, "NBBO spread over mid, bps"),
        _def("microprice_bps", "microprice_bps", QUOTES, q, 1, "size-weighted microprice over mid - 1, bps"),
        _def("book_imbalance", "book_imbalance", QUOTES, q, 1, "(bid size - ask size) / (bid size + ask size)"),
        _def(
            "mid_rv_60s",
            "mid_rv",
            QUOTES,
            q,
            60,
            "annualised realised vol of 1 s mid returns, 60 s",
            w=60,
            year_seconds=YEAR_SECONDS,
        ),
        _def(
            "mid_rv_300s",
            "mid_rv",
            QUOTES,
            q,
            300,
            "annualised realised vol of 1 s mid returns, 300 s",
            w=300,
            year_seconds=YEAR_SECONDS,
        ),
        _def("secs_since_open", "secs_since_open", CALENDAR, (), 1, "seconds since the session opened"),
        _def("secs_to_close", "secs_to_close", CALENDAR, (), 1, "seconds until the session closes"),
    ]
    return tuple(feats)


TICK_V2 = register(
    FeatureSet(
        FEATURE_SET,
        TF,
        _features(),
        description="per-second trade and quote features of one symbol in one exchange session",
    )
)
FEATURE_NAMES: tuple[str, ...] = TICK_V2.names
KINDS = frozenset(f.param["kind"] for f in TICK_V2.features)


def parity_error(stream: float, batch: float) -> float:
    """The error ``stream_tolerance`` bounds: absolute below 1, relative above."""
    return abs(stream - batch) / max(1.0, abs(batch))
