"""Every table of the lake, declared once (DESIGN section 4).

Timestamps are UTC nanoseconds. Bronze rows carry ``source``, ``ingest_ts`` and ``batch_id`` and a
``date`` partition derived from ``ts``. Bars are stamped at their END.
"""

from __future__ import annotations

import pyarrow as pa

from lakehouse.schema import TS, TableSpec, col

F64 = pa.float64()
I64 = pa.int64()
STR = pa.large_string()  # what polars hands over: no copy on the way to Delta (which stores both as string)

_LINEAGE = (
    col("source", STR, doc="vendor or adapter that delivered the row"),
    col("ingest_ts", TS, doc="when this platform ingested the row"),
    col("batch_id", STR, doc="deterministic id of the ingest batch (source + file content)"),
)
_DATE = col("date", STR, doc="UTC date of ts, YYYY-MM-DD (partition)")
PRICE_MAX = 1e9  # no traded instrument quotes above this; 1e308 is a corrupt field, not a price


def _bronze(
    name: str,
    columns,
    keys,
    *,
    ordered_by="ts",
    series_by=("symbol_id",),
    partition_by=("source", "date"),
    doc="",
    extra_checks=(),
):
    cols = (*columns, *_LINEAGE, *((_DATE,) if "date" in partition_by else ()))
    return TableSpec(
        "bronze",
        name,
        cols,
        keys=keys,
        partition_by=partition_by,
        ordered_by=ordered_by,
        series_by=series_by,
        doc=doc,
        extra_checks=extra_checks,
    )


BRONZE_TRADES = _bronze(
    "trades",
    (
        col("ts", TS),
        col("symbol_id", STR),
        col("price", F64, positive=True, upper=PRICE_MAX),
        col("size", F64, non_negative=True),
        col("side", pa.int8(), nullable=True, doc="+1 buy aggressor, -1 sell, null unknown"),
        col("exchange", STR, nullable=True),
        col("conditions", STR, nullable=True),
        col("seq", I64, doc="order of the row among rows with the same (symbol_id, ts) in the delivery"),
    ),
    keys=("source", "symbol_id", "ts", "seq"),
    doc="trade prints as delivered",
    extra_checks=("duplicate_print",),
)

BRONZE_QUOTES = _bronze(
    "quotes",
    (
        col("ts", TS),
        col("symbol_id", STR),
        col("bid", F64, nullable=True, positive=True, upper=PRICE_MAX),
        col("bid_size", F64, nullable=True, non_negative=True),
        col("ask", F64, nullable=True, positive=True, upper=PRICE_MAX),
        col("ask_size", F64, nullable=True, non_negative=True),
        col("exchange", STR, nullable=True),
        col("seq", I64),
    ),
    keys=("source", "symbol_id", "ts", "seq"),
    doc="top-of-book quotes (one side may be missing)",
)

BRONZE_BARS = _bronze(
    "bars",
    (
        col("ts", TS, doc="bar END"),
        col("tf", STR, doc="timeframe: 1s, 1m, 5m, 15m, 1h, 1d"),
        col("symbol_id", STR),
        col("kind", STR, doc="trade, bid, ask or mid"),
        col("open", F64, positive=True, upper=PRICE_MAX),
        col("high", F64, positive=True, upper=PRICE_MAX),
        col("low", F64, positive=True, upper=PRICE_MAX),
        col("close", F64, positive=True, upper=PRICE_MAX),
        col("volume", F64, nullable=True, non_negative=True),
        col("vwap", F64, nullable=True, positive=True, upper=PRICE_MAX),
        col("n_trades", I64, nullable=True, non_negative=True),
    ),
    keys=("source", "symbol_id", "tf", "kind", "ts"),
    partition_by=("source", "tf"),
    series_by=("symbol_id", "tf", "kind"),
    doc="vendor bars, stamped at their end",
    extra_checks=("ohlc",),
)

BRONZE_BOOK_EVENTS = _bronze(
    "book_events",
    (
        col("ts", TS),
        col("symbol_id", STR),
        col("action", STR, doc="add, cancel, modify, trade, fill, clear, snapshot"),
        col("side", pa.int8(), nullable=True),
        col("price", F64, nullable=True, positive=True, upper=PRICE_MAX),
        col("size", F64, nullable=True, non_negative=True),
        col("order_id", I64, nullable=True),
        col("level", pa.int16(), nullable=True, doc="book level for level-N updates"),
        col("book", STR, nullable=True, doc="JSON of the level-N book after the event, when delivered"),
        col("seq", I64),
    ),
    keys=("source", "symbol_id", "ts", "seq"),
    doc="order-level or level-N book updates",
)

BRONZE_OPTIONS_CHAIN = _bronze(
    "options_chain",
    (
        col("ts", TS),
        col("underlying", STR),
        col("expiry", pa.date32()),
        col("strike", F64, positive=True),
        col("right", STR, doc="C or P"),
        col("bid", F64, nullable=True, non_negative=True),
        col("ask", F64, nullable=True, non_negative=True),
        col("last", F64, nullable=True, non_negative=True),
        col("volume", F64, nullable=True, non_negative=True),
        col("open_interest", F64, nullable=True, non_negative=True),
        col("iv", F64, nullable=True, non_negative=True),
        col("delta", F64, nullable=True),
        col("gamma", F64, nullable=True),
        col("vega", F64, nullable=True),
        col("theta", F64, nullable=True),
        col("rho", F64, nullable=True),
    ),
    keys=("source", "underlying", "ts", "expiry", "strike", "right"),
    ordered_by=None,
    series_by=("underlying",),
    doc="option chain snapshots with IV and greeks",
)

BRONZE_FUTURES_CONTRACTS = _bronze(
    "futures_contracts",
    (
        col("root", STR),
        col("contract", STR, doc="symbol_id of the contract, e.g. ESZ13:CME"),
        col("expiry", pa.date32()),
        col("first_notice", pa.date32(), nullable=True),
        col("last_trade", pa.date32(), nullable=True),
        col("multiplier", F64, positive=True),
        col("tick_size", F64, positive=True),
    ),
    keys=("source", "contract"),
    partition_by=("source",),
    ordered_by=None,
    series_by=(),
    doc="futures contract definitions",
)

BRONZE_OPEN_INTEREST = _bronze(
    "open_interest",
    (
        col("ts", TS),
        col("symbol_id", STR, doc="contract symbol_id"),
        col("open_interest", F64, non_negative=True),
    ),
    keys=("source", "symbol_id", "ts"),
    doc="open interest per contract",
)

BRONZE_CORPORATE_ACTIONS = _bronze(
    "corporate_actions",
    (
        col("symbol_id", STR),
        col("ex_date", pa.date32()),
        col("kind", STR, doc="split or dividend"),
        col("ratio", F64, nullable=True, positive=True, doc="split: new shares per old share"),
        col("amount", F64, nullable=True, non_negative=True, doc="dividend per share"),
        col("price_factor", F64, nullable=True, positive=True, doc="vendor's cumulative price factor, if delivered"),
        col("split_factor", F64, nullable=True, positive=True, doc="vendor's cumulative split factor, if delivered"),
        col("known_at", TS),
    ),
    keys=("source", "symbol_id", "ex_date", "kind"),
    partition_by=("source",),
    ordered_by=None,
    series_by=(),
    doc="splits and dividends",
)

BRONZE_SYMBOL_MAP = _bronze(
    "symbol_map",
    (
        col("symbol_id", STR, doc="permanent id"),
        col("date", pa.date32(), doc="ticker in force until this date"),
        col("ticker", STR),
        col("exchange", STR, nullable=True),
    ),
    keys=("source", "symbol_id", "date"),
    partition_by=("source",),
    ordered_by=None,
    series_by=(),
    doc="ticker changes (LEAN map files)",
)

BRONZE_SECURITY_MASTER = TableSpec(
    "bronze",
    "security_master",
    (
        col("symbol_id", STR),
        col("asset_class", STR, doc="equity, future, option, fx, crypto, index"),
        col("exchange", STR),
        col("currency", STR),
        col("calendar", STR, doc="exchange-calendars name or 24/7"),
        col("tick_size", F64, positive=True),
        col("multiplier", F64, positive=True),
        col("lot_size", F64, positive=True),
        col("description", STR, nullable=True),
        *_LINEAGE,
    ),
    keys=("symbol_id",),
    doc="instruments the platform knows (seed MPS 2.1)",
)

BRONZE_QUARANTINE = TableSpec(
    "bronze",
    "quarantine",
    (
        col("source", STR),
        col("table", STR, doc="target table the row was meant for"),
        col("file", STR, doc="file, query or stream the row came from"),
        col("row", I64, doc="row number in it (1-based)"),
        col("raw", STR, doc="the raw payload as delivered"),
        col("reason", STR),
        col("ingest_ts", TS),
        col("batch_id", STR),
    ),
    keys=("batch_id", "table", "row", "reason"),
    partition_by=("source",),
    lineage=False,
    doc="rows that were rejected, with why and their raw text",
)

BRONZE_INGEST_LOG = TableSpec(
    "bronze",
    "ingest_log",
    (
        col("batch_id", STR),
        col("source", STR),
        col("table", STR),
        col("file", STR),
        col("rows_read", I64, non_negative=True),
        col("rows_written", I64, non_negative=True),
        col("duplicates", I64, non_negative=True),
        col("quarantined", I64, non_negative=True),
        col("ingest_ts", TS),
    ),
    keys=("batch_id", "table"),
    lineage=False,
    doc="per-batch account: rows_read = rows_written + duplicates + quarantined",
)

BRONZE_SIM_TRUTH = _bronze(
    "sim_truth",
    (
        col("ts", TS),
        col("symbol_id", STR),
        col("price", F64, positive=True),
        col("regime", pa.int8()),
        col("vol", F64, non_negative=True),
    ),
    keys=("source", "symbol_id", "ts"),
    doc="the simulator's true price path, for scoring reconciliation",
)

BRONZE_SIM_EVENTS = _bronze(
    "sim_events",
    (
        col("ts", TS),
        col("symbol_id", STR),
        col("vendor", STR),
        col("kind", STR, doc="bad_print, stale_start, stale_end, gap_start, gap_end"),
        col("detail", STR, nullable=True),
    ),
    keys=("source", "symbol_id", "vendor", "ts", "kind"),
    doc="what the simulator injected into each vendor's feed (ground truth for quality scoring)",
)

QUALITY = pa.struct(
    [
        pa.field("stale", pa.bool_()),
        pa.field("outlier_frac", F64),
        pa.field("n_src", I64),
        pa.field("lat_ms", F64),
        pa.field("sources", pa.list_(STR)),
        pa.field("outliers", pa.list_(STR)),  # vendors that delivered the slot and were voted out
    ]
)

SILVER_BARS = TableSpec(
    "silver",
    "bars",
    (
        col("symbol_id", STR),
        col("tf", STR),
        col("ts", TS, doc="bar END"),
        col("adjustment", STR, doc="raw, or adjusted (splits and dividends known at known_at)"),
        col("open", F64, positive=True),
        col("high", F64, positive=True),
        col("low", F64, positive=True),
        col("close", F64, positive=True),
        col("volume", F64, non_negative=True),
        col("vwap", F64, nullable=True, positive=True),
        col("n_trades", I64, nullable=True, non_negative=True),
        col("quality", QUALITY, doc="seed MPS 2.2: stale, outlier_frac, n_src, lat_ms, sources; plus outliers"),
        col("known_at", TS, doc="when the platform could first have known this bar"),
    ),
    keys=("symbol_id", "tf", "adjustment", "ts"),
    partition_by=("tf",),
    lineage=False,
    doc="reconciled consensus bars, raw and adjusted",
)

SILVER_CONTINUOUS = TableSpec(
    "silver",
    "continuous_futures",
    (
        col("symbol_id", STR, doc="continuous series id, e.g. ES:CME"),
        col("tf", STR),
        col("ts", TS),
        col("method", STR, doc="none, panama (back-adjusted) or ratio"),
        col("roll_rule", STR, doc="open_interest, volume, or days_before:<n>:<first_notice|last_trade>"),
        col("contract", STR, doc="contract in force"),
        col("roll", pa.bool_(), doc="first bar of a new contract"),
        col("open", F64),
        col("high", F64),
        col("low", F64),
        col("close", F64),
        col("volume", F64, non_negative=True),
        col("adjust", F64, doc="offset (panama) or factor (ratio) applied"),
        col("known_at", TS),
    ),
    keys=("symbol_id", "tf", "method", "roll_rule", "ts"),
    partition_by=("symbol_id",),
    lineage=False,
    doc="continuous futures with the contract in force and roll flags",
)

SILVER_VENDOR_STATS = TableSpec(
    "silver",
    "vendor_stats",
    (
        col("source", STR),
        col("symbol_id", STR),
        col("window_start", TS),
        col("window_end", TS),
        col("latency_ms", F64, non_negative=True),
        col("uptime", F64, non_negative=True),
        col("reliability", F64, non_negative=True),
        col("outlier_rate", F64, non_negative=True),
        col("n_obs", I64, non_negative=True),
        col("known_at", TS),
    ),
    keys=("source", "symbol_id", "window_end"),
    lineage=False,
    doc="per-vendor latency, uptime, reliability and outlier rate; feeds the consensus weights",
)

SILVER_CLOCK_OFFSETS = TableSpec(
    "silver",
    "clock_offsets",
    (
        col("source", STR),
        col("reference", STR),
        col("symbol_id", STR),
        col("window_start", TS),
        col("window_end", TS),
        col("offset_ns", I64, doc="add to the source's ts to align it with the reference"),
        col("corr", F64, doc="return cross-correlation at that lag"),
        col("known_at", TS),
    ),
    keys=("source", "reference", "symbol_id", "window_end"),
    lineage=False,
    doc="detected clock offsets between vendors",
)

SILVER_FRESHNESS = TableSpec(
    "silver",
    "freshness",
    (
        col("symbol_id", STR),
        col("source", STR),
        col("as_of", TS),
        col("last_ts", TS),
        col("age_ms", F64, non_negative=True),
        col("stale", pa.bool_()),
    ),
    keys=("symbol_id", "source", "as_of"),
    lineage=False,
    doc="data age per symbol and source",
)

SILVER_QUALITY_RESULTS = TableSpec(
    "silver",
    "quality_results",
    (
        col("run_id", STR),
        col("table", STR),
        col("suite", STR),
        col("expectation", STR),
        col("column", STR, nullable=True),
        col("success", pa.bool_()),
        col("element_count", I64, non_negative=True),
        col("unexpected_count", I64, non_negative=True),
        col("details", STR, doc="the validation result as JSON"),
        col("validated_at", TS),
    ),
    keys=("run_id", "table", "expectation"),
    lineage=False,
    doc="great-expectations results of every silver write",
)

GOLD_SIGNALS = TableSpec(
    "gold",
    "signals",
    (
        col("ts", TS),
        col("symbol_id", STR),
        col("tf", STR),
        col("model", STR),
        col("model_version", STR),
        col("horizon", I64),
        col("prob_up", F64),
        col("expected_return", F64, finite=True),
        col("q05", F64),
        col("q50", F64),
        col("q95", F64),
        col("band_lo", F64),
        col("band_hi", F64),
        col("conf", F64),
        col("kelly", F64),
        col("size", F64),
        col("guard", STR, nullable=True),
        col("seq", I64),
        col("published_at", TS),
        col("payload", STR, doc="the Signal JSON as published"),
        _DATE,
    ),
    # DESIGN section 6: a Signal is keyed on (model version, symbol, tf, ts, seq). The version is
    # written as (model, model_version) because registry versions count per model name; seq
    # separates two updates of one series stamped with the same ts. horizon is only a row
    # discriminator: a Signal summarising several horizons would store one row per horizon.
    # The sink's keyed write (feature_store.signal_sink) dedupes on exactly these columns, so a
    # redelivered Signal never adds a row while two model versions scoring one update both store.
    keys=("model", "model_version", "symbol_id", "tf", "ts", "seq", "horizon"),
    partition_by=("date",),
    lineage=False,
    doc="everything the scorer published, one row per (model version, update, horizon); appended by the signal sink",
)

TABLES: dict[str, TableSpec] = {
    t.qualified: t
    for t in (
        BRONZE_TRADES,
        BRONZE_QUOTES,
        BRONZE_BARS,
        BRONZE_BOOK_EVENTS,
        BRONZE_OPTIONS_CHAIN,
        BRONZE_FUTURES_CONTRACTS,
        BRONZE_OPEN_INTEREST,
        BRONZE_CORPORATE_ACTIONS,
        BRONZE_SYMBOL_MAP,
        BRONZE_SECURITY_MASTER,
        BRONZE_QUARANTINE,
        BRONZE_INGEST_LOG,
        BRONZE_SIM_TRUTH,
        BRONZE_SIM_EVENTS,
        SILVER_BARS,
        SILVER_CONTINUOUS,
        SILVER_VENDOR_STATS,
        SILVER_CLOCK_OFFSETS,
        SILVER_FRESHNESS,
        SILVER_QUALITY_RESULTS,
        GOLD_SIGNALS,
    )
}


def register(spec: TableSpec) -> TableSpec:
    """Add a table declared elsewhere (silver, gold) to the registry; return it for assignment."""
    existing = TABLES.get(spec.qualified)
    if existing is not None and existing != spec:
        raise ValueError(f"table {spec.qualified} declared twice with different shapes")
    TABLES[spec.qualified] = spec
    return spec


def table(qualified: str) -> TableSpec:
    """Look up a table by ``layer.name``; the error lists what exists."""
    try:
        return TABLES[qualified]
    except KeyError:
        from core.errors import TableError

        raise TableError(f"unknown table {qualified!r}; known: {', '.join(sorted(TABLES))}") from None
