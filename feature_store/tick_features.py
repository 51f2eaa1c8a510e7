"""The tick feature set ``tick_v1``: per-second features of one symbol, declared once.

``TICK_V1`` is the registry: an ordered list of (name, expression builder). The batch path
(``tick_features``), the demo's replay of its rows (``feature_updates``) and the tick model's
metadata all use this order; ``check_model_features`` proves a model file was trained on the same list.

tick_v1 stays for the fixture model (contracts/models/tick_tiny) the demo scores. The real
per-second set is ``tick_v2`` (``feature_store.tick``: from bronze ticks, with an incremental
streaming featurizer in ``feature_store.streaming`` held to the batch rows by a parity test);
``feature_updates`` only re-serialises batch rows and is not a streaming path.

Inputs are silver 1s consensus bars (close, volume, n_trades, known_at) on a regular 1 s grid
per (symbol, day) (seconds without a bar carry the last close with zero volume), joined with a
per-second consensus of bronze top-of-book quotes (median across vendors of each vendor's last
quote in the second). Every expression looks only backwards within its series (shift, rolling,
cumulative), so a feature at ``ts`` never changes when later bars change. A row's ``known_at`` is
the latest ``known_at`` of any bar it depends on (a running maximum), never before ``ts``.
Warm-up values that a window cannot give yet are 0, so every published vector is finite.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import polars as pl
import pyarrow as pa

from core.errors import ContractError
from feature_store.messages import FeatureUpdate
from feature_store.registry import FeatureDef, FeatureSet
from feature_store.registry import register as register_set
from lakehouse.predicates import between, where
from lakehouse.schema import PL_TS as TS
from lakehouse.schema import TS as TS_TYPE
from lakehouse.schema import TableSpec, col
from lakehouse.storage import Lake, ts_value
from lakehouse.tables import register

NS = 1_000_000_000
FEATURE_SET = "tick_v1"
TF = "1s"
SERIES = ["symbol_id", "day"]
INPUT_COLUMNS = ("close", "volume", "n_trades", "bid", "ask", "bid_size", "ask_size", "n_quotes")


@dataclass(frozen=True)
class TickFeatureConfig:
    """Window lengths (seconds = rows of the 1 s grid) and annualisation of ``tick_v1``."""

    year_seconds: float = 252 * 23_400.0  # trading seconds per year (XNYS regular sessions)
    day_seconds: float = 23_400.0  # one session, to scale the intraday ADV estimate
    flow_window: int = 30  # trade_imbalance (tick-rule signed volume)
    intensity_window: int = 10  # trade_intensity, quote_intensity (per second)


Builder = Callable[[TickFeatureConfig], pl.Expr]


def _lp() -> pl.Expr:
    return pl.col("close").log()


def _ret(n: int) -> Builder:
    """Log return over the last ``n`` seconds (since the series start while it is shorter)."""
    return lambda cfg: _lp() - _lp().shift(n).over(SERIES).fill_null(_lp().first().over(SERIES))


def _r1() -> pl.Expr:
    return (_lp() - _lp().shift(1)).over(SERIES)


def _rv(n: int) -> Builder:
    """Realised volatility of 1 s log returns over ``n`` seconds, annualised (mean of r^2)."""
    return lambda cfg: ((_r1() ** 2).rolling_mean(n, min_samples=1).over(SERIES) * cfg.year_seconds).sqrt()


def _mid() -> pl.Expr:
    return (pl.col("bid") + pl.col("ask")) / 2


def _spread_bps(cfg: TickFeatureConfig) -> pl.Expr:
    return 1e4 * (pl.col("ask") - pl.col("bid")) / _mid()


def _book_imbalance(cfg: TickFeatureConfig) -> pl.Expr:
    depth = pl.col("bid_size") + pl.col("ask_size")
    return pl.when(depth > 0).then((pl.col("bid_size") - pl.col("ask_size")) / depth)


def _trade_imbalance(cfg: TickFeatureConfig) -> pl.Expr:
    """Tick-rule signed volume over the flow window, as a share of the volume traded in it."""
    move = pl.col("close").diff().over(SERIES)
    sign = pl.when(move > 0).then(1.0).when(move < 0).then(-1.0).forward_fill().over(SERIES).fill_null(0.0)
    signed = (sign * pl.col("volume")).rolling_sum(cfg.flow_window, min_samples=1).over(SERIES)
    total = pl.col("volume").rolling_sum(cfg.flow_window, min_samples=1).over(SERIES)
    return pl.when(total > 0).then(signed / total)


def _intensity(column: str) -> Builder:
    return lambda cfg: pl.col(column).cast(pl.Float64).rolling_mean(cfg.intensity_window, min_samples=1).over(SERIES)


def _adv_notional(cfg: TickFeatureConfig) -> pl.Expr:
    """Intraday ADV estimate: mean notional per second so far in the session, times a session."""
    notional = pl.col("close") * pl.col("volume")
    return notional.cum_sum().over(SERIES) / pl.int_range(1, pl.len() + 1).over(SERIES) * cfg.day_seconds


TICK_V1: tuple[tuple[str, Builder], ...] = (
    ("ret_1s", _ret(1)),
    ("ret_5s", _ret(5)),
    ("ret_30s", _ret(30)),
    ("ret_120s", _ret(120)),
    ("spread_bps", _spread_bps),
    ("book_imbalance", _book_imbalance),
    ("trade_imbalance", _trade_imbalance),
    ("trade_intensity", _intensity("n_trades")),
    ("quote_intensity", _intensity("n_quotes")),
    ("rv_60s_ann", _rv(60)),
    ("rv_300s_ann", _rv(300)),
    ("adv_notional", _adv_notional),
)
_Q = "bronze.quotes"
_B = "silver.bars"
TICK_V1_SET = register_set(
    FeatureSet(
        FEATURE_SET,
        TF,
        (
            FeatureDef("ret_1s", params={"n": 1}, input_table=_B, window=1, description="log return over 1 s"),
            FeatureDef("ret_5s", params={"n": 5}, input_table=_B, window=5, description="log return over 5 s"),
            FeatureDef("ret_30s", params={"n": 30}, input_table=_B, window=30, description="log return over 30 s"),
            FeatureDef("ret_120s", params={"n": 120}, input_table=_B, window=120, description="log return over 120 s"),
            FeatureDef("spread_bps", input_table=_Q, input_columns=("bid", "ask"), description="quoted spread, bps"),
            FeatureDef(
                "book_imbalance",
                input_table=_Q,
                input_columns=("bid_size", "ask_size"),
                description="(bid size - ask size) / depth at the top of book",
            ),
            FeatureDef(
                "trade_imbalance",
                params={"window": 30},
                input_table=_B,
                input_columns=("close", "volume"),
                window=30,
                description="tick-rule signed volume share",
            ),
            FeatureDef(
                "trade_intensity",
                params={"window": 10},
                input_table=_B,
                input_columns=("n_trades",),
                window=10,
                description="trades per second",
            ),
            FeatureDef(
                "quote_intensity",
                params={"window": 10},
                input_table=_Q,
                input_columns=("n_quotes",),
                window=10,
                description="quote updates per second",
            ),
            FeatureDef("rv_60s_ann", params={"n": 60}, input_table=_B, window=60, description="annualised RV, 60 s"),
            FeatureDef(
                "rv_300s_ann", params={"n": 300}, input_table=_B, window=300, description="annualised RV, 300 s"
            ),
            FeatureDef(
                "adv_notional",
                input_table=_B,
                input_columns=("close", "volume"),
                window=0,
                stream_tolerance=1e-6,
                description="intraday ADV estimate (notional)",
            ),
        ),
        description="per-second tick features (demo seed)",
    )
)
FEATURE_NAMES: tuple[str, ...] = TICK_V1_SET.names
if FEATURE_NAMES != tuple(name for name, _ in TICK_V1):
    raise ContractError("tick_v1 builders and registry definitions disagree on the feature order")


GOLD_TICK_FEATURES = register(
    TableSpec(
        "gold",
        "tick_features",
        (
            col("symbol_id", pa.string()),
            col("tf", pa.string()),
            col("ts", TS_TYPE, doc="end of the 1 s step"),
            col("known_at", TS_TYPE, doc="latest known_at of the bars the row depends on"),
            col("feature_set", pa.string()),
            *(col(name, pa.float64(), finite=True) for name in FEATURE_NAMES),
            col("date", pa.string(), doc="UTC date of ts (partition)"),
        ),
        keys=("symbol_id", "tf", "feature_set", "ts"),
        partition_by=("date",),
        lineage=False,
        doc="tick feature set tick_v1 per symbol per second (columns derived from the registry)",
    )
)


def check_model_features(feature_set: str, feature_names: tuple[str, ...]) -> None:
    """Raise ContractError unless a model consumes exactly this registry, in this order."""
    TICK_V1_SET.check_model(feature_set, feature_names)


def _second_end(ts: pl.Expr) -> pl.Expr:
    """The end of the 1 s bar holding ``ts`` (bars cover ``(end - 1 s, end]``)."""
    ns = ts.cast(TS).dt.epoch("ns")
    return (((ns - 1) // NS + 1) * NS).cast(TS)


def quote_seconds(quotes: pl.DataFrame) -> pl.DataFrame:
    """Consensus top of book per (symbol_id, second end): median over vendors of their last quote.

    ``quotes`` has bronze.quotes columns source, symbol_id, ts, bid, bid_size, ask, ask_size.
    ``n_quotes`` is the number of quote updates per vendor in the second (mean over vendors).
    """
    q = quotes.with_columns(_second_end(pl.col("ts")).alias("ts")).sort("ts")
    last = lambda c: pl.col(c).drop_nulls().last().alias(c)  # noqa: E731 - one-line column helper
    per_vendor = q.group_by("symbol_id", "ts", "source").agg(
        *(last(c) for c in ("bid", "ask", "bid_size", "ask_size")), pl.len().alias("n")
    )
    crossed = pl.col("bid") > pl.col("ask")
    per_vendor = per_vendor.with_columns(
        pl.when(crossed).then(None).otherwise(pl.col(c)).alias(c) for c in ("bid", "ask")
    )
    return (
        per_vendor.group_by("symbol_id", "ts")
        .agg(
            *(pl.col(c).median() for c in ("bid", "ask", "bid_size", "ask_size")), pl.col("n").mean().alias("n_quotes")
        )
        .sort("symbol_id", "ts")
    )


def second_grid(bars_1s: pl.DataFrame, quotes_1s: pl.DataFrame | None = None) -> pl.DataFrame:
    """A regular 1 s grid per (symbol, day) from silver 1s bars, with the last quote carried.

    Seconds with no bar keep the last close, volume and trade count 0; ``known_at`` is the running
    maximum of the bars' ``known_at`` (and at least ``ts``), so a row is known only once every bar
    it depends on is.
    """
    bars = (
        bars_1s.select(
            "symbol_id",
            pl.col("ts").cast(TS),
            pl.col("known_at").cast(TS),
            "close",
            "volume",
            pl.col("n_trades").cast(pl.Float64),
        )
        .with_columns(pl.col("ts").dt.date().alias("day"))
        .sort("symbol_id", "ts")
    )
    spans = bars.group_by(SERIES).agg(
        pl.datetime_range(pl.col("ts").min(), pl.col("ts").max(), "1s", time_unit="ns", time_zone="UTC").alias("ts")
    )
    grid = spans.explode("ts").join(bars.drop("day"), on=["symbol_id", "ts"], how="left")
    if quotes_1s is not None and quotes_1s.height:
        grid = grid.join(
            quotes_1s.with_columns(pl.col("ts").cast(TS), pl.col("n_quotes").cast(pl.Float64)),
            on=["symbol_id", "ts"],
            how="left",
        )
    else:
        grid = grid.with_columns(
            pl.lit(None, pl.Float64).alias(c) for c in ("bid", "ask", "bid_size", "ask_size", "n_quotes")
        )
    grid = grid.sort(*SERIES, "ts")
    carried = ("close", "bid", "ask", "bid_size", "ask_size")
    return grid.with_columns(
        *(pl.col(c).forward_fill().over(SERIES) for c in carried),
        *(pl.col(c).fill_null(0.0) for c in ("volume", "n_trades", "n_quotes")),
        pl.max_horizontal("known_at", "ts").cum_max().over(SERIES).alias("known_at"),
    )


def tick_features(grid: pl.DataFrame, cfg: TickFeatureConfig = TickFeatureConfig()) -> pl.DataFrame:
    """Compute ``tick_v1`` on a ``second_grid`` frame: symbol_id, tf, ts, known_at, feature_set, features."""
    ordered = grid.sort(*SERIES, "ts")
    feats = ordered.select(
        "symbol_id",
        pl.lit(TF).alias("tf"),
        "ts",
        "known_at",
        pl.lit(FEATURE_SET).alias("feature_set"),
        *(build(cfg).cast(pl.Float64).alias(name) for name, build in TICK_V1),
    )
    return feats.with_columns(pl.col(n).fill_nan(None).fill_null(0.0) for n in FEATURE_NAMES)


def features_from_silver(
    bars_1s: pl.DataFrame, quotes: pl.DataFrame | None = None, cfg: TickFeatureConfig = TickFeatureConfig()
) -> pl.DataFrame:
    """Silver 1s consensus bars (and bronze quotes, if any) in, ``tick_v1`` rows out."""
    q = quote_seconds(quotes) if quotes is not None and quotes.height else None
    return tick_features(second_grid(bars_1s, q), cfg)


def write_features(lake: Lake, features: pl.DataFrame) -> int:
    """Replace the features' (symbol, day) windows in gold.tick_features; re-running changes nothing."""
    if features.height == 0:
        return 0
    rows = features.with_columns(pl.col("ts").dt.strftime("%Y-%m-%d").alias("date"))
    lo, hi = ts_value(rows["ts"].min()), ts_value(rows["ts"].max())
    predicate = where(feature_set=FEATURE_SET, symbol_id=rows["symbol_id"].unique().to_list()) & between("ts", lo, hi)
    return lake.replace_window(GOLD_TICK_FEATURES, rows, predicate)


def feature_updates(features: pl.DataFrame) -> Iterator[FeatureUpdate]:
    """Turn tick_v1 rows into FeatureUpdates in time order (seq per symbol from 0): the demo's batch replay.

    Streaming features come from ``feature_store.streaming`` (``publish_session_features`` for a session).
    """
    rows = features.sort("ts", "symbol_id").select(
        "symbol_id",
        "tf",
        pl.col("ts").dt.epoch("ns").alias("ts"),
        pl.col("known_at").dt.epoch("ns").alias("known_at"),
        "feature_set",
        pl.concat_list(pl.col(n).cast(pl.Float32) for n in FEATURE_NAMES).alias("values"),
        (pl.int_range(pl.len()).over("symbol_id", order_by="ts")).alias("seq"),
    )
    for r in rows.iter_rows(named=True):
        yield FeatureUpdate(
            r["symbol_id"],
            r["tf"],
            r["ts"],
            r["known_at"],
            r["feature_set"],
            tuple(float(v) for v in r["values"]),
            int(r["seq"]),
        )
