"""PostgreSQL source: the SPECS seed's ``stock_trades`` and ``options_data`` read by id watermark.

Each run reads, per table, only the rows whose ``id`` is above the watermark stored in the lake
(``bronze.watermarks``, one row per advance, keyed by connection, table and last id). The id range
of a batch is fixed before reading (at most ``batch_rows`` ids past the watermark), so the batch id
``hash(connection, table, range)`` is deterministic, and the rows stream from a server-side cursor
in chunks of ``chunk_size``.

The watermark moves only after the engine has written every chunk of the batch: the chunk stream
marks itself complete once the engine asks for the chunk after the last one (i.e. the last write
committed), and the advance happens when the engine asks for the next batch. A crash in between
re-reads the range on the next run, and the engine's idempotent appends make that harmless.
Iterate the batches lazily, one at a time: materialising them all up front never advances it.

The watermark assumes ids are assigned in commit order (one writer, as the seed does). The DDL the
source expects is in ``sql_seed.sql`` beside this file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal, cast

import polars as pl
import psycopg
import pyarrow.compute as pc
from polars._typing import SchemaDict
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pydantic import Field, SecretStr

from core.config import Strict
from core.errors import SourceError
from lakehouse.ingest import Batch, Chunk, Clock, Rejected, text_batch_id
from lakehouse.schema import TS, TableSpec, col
from lakehouse.storage import Lake
from lakehouse.tables import BRONZE_OPTIONS_CHAIN, BRONZE_TRADES, I64, STR, register

SEED_DDL = Path(__file__).with_name("sql_seed.sql")

WATERMARKS = register(
    TableSpec(
        "bronze",
        "watermarks",
        (
            col("connection", STR, doc="postgresql://host:port/db the rows came from (no user, no password)"),
            col("source_table", STR, doc="schema.table read"),
            col("last_id", I64, non_negative=True, doc="highest id written to bronze"),
            col("rows", I64, non_negative=True, doc="rows read in the batch that advanced it"),
            col("batch_id", STR),
            col("advanced_at", TS),
        ),
        keys=("connection", "source_table", "last_id"),
        lineage=False,
        doc="incremental read positions of database sources; the current one is the max last_id",
    )
)

TableName = Literal["stock_trades", "options_data"]


class Params(Strict):
    """Where the database is, what to read and how to name its symbols."""

    dsn: SecretStr | None = Field(None, description="libpq conninfo or URI; overrides host/port/dbname/user")
    host: str = "127.0.0.1"
    port: int = Field(5432, gt=0, lt=65536)
    dbname: str = "specs"
    user: str = "postgres"
    password: SecretStr | None = Field(None, description="prefer PGPASSWORD or ~/.pgpass")
    schema_name: str = Field("public", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    tables: tuple[TableName, ...] = ("stock_trades", "options_data")
    chunk_size: int = Field(50_000, gt=0, description="rows per fetch from the server-side cursor")
    batch_rows: int = Field(1_000_000, gt=0, description="most ids per batch (one watermark advance)")
    symbols: dict[str, str] = Field(default_factory=dict, description="database symbol -> symbol_id")
    default_suffix: str | None = Field(
        ":US", description="symbol_id = SYMBOL + suffix when unmapped; None quarantines unmapped symbols"
    )
    source: str = "sql"
    connect_timeout_s: int = Field(10, gt=0)


# ---- connecting -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Endpoint:
    """Where the database is; ``where`` and ``identity`` never hold the user or the password."""

    host: str
    port: int
    dbname: str
    conninfo: str = field(repr=False)
    password: str | None = field(repr=False)

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}/{self.dbname}"

    @property
    def identity(self) -> str:
        return f"postgresql://{self.where}"

    def scrub(self, message: str) -> str:
        """Remove the password from a driver message before it reaches a log or an error."""
        return message.replace(self.password, "***") if self.password else message


def endpoint(params: Params) -> Endpoint:
    """Resolve the DSN (or host/port/dbname/user) into an endpoint; a bad DSN names no secret."""
    if params.dsn is not None:
        try:
            parts = conninfo_to_dict(params.dsn.get_secret_value())
        except psycopg.ProgrammingError:
            raise SourceError("sql source: dsn is not a valid PostgreSQL conninfo or URI") from None
        if params.password is not None:
            parts["password"] = params.password.get_secret_value()
    else:
        parts = {"host": params.host, "port": params.port, "dbname": params.dbname, "user": params.user}
        if params.password is not None:
            parts["password"] = params.password.get_secret_value()
    host = str(parts.get("host") or parts.get("hostaddr") or "localhost")
    return Endpoint(
        host,
        int(parts.get("port") or 5432),
        str(parts.get("dbname") or parts.get("user") or "postgres"),
        make_conninfo(**{k: str(v) for k, v in parts.items()}),
        None if parts.get("password") is None else str(parts["password"]),
    )


def connect(ep: Endpoint, params: Params) -> psycopg.Connection:
    """Open a connection in UTC; failure is a SourceError naming host:port/db (never the password)."""
    try:
        return psycopg.connect(
            ep.conninfo,
            connect_timeout=params.connect_timeout_s,
            options="-c TimeZone=UTC",
            application_name="mps-ingest",
        )
    except psycopg.Error as exc:
        raise SourceError(f"PostgreSQL at {ep.where}: cannot connect: {ep.scrub(str(exc)).strip()}") from None


@contextmanager
def source_errors(ep: Endpoint, doing: str):
    """Turn driver errors into SourceErrors that say what was being done, and where."""
    try:
        yield
    except psycopg.Error as exc:
        raise SourceError(f"PostgreSQL at {ep.where}: {doing} failed: {ep.scrub(str(exc)).strip()}") from None


# ---- watermarks -------------------------------------------------------------------------------
def current_watermark(lake: Lake, connection: str, source_table: str) -> int:
    """The highest id already written for this connection and table (0 before the first run)."""
    flt = (pc.field("connection") == connection) & (pc.field("source_table") == source_table)
    ids = lake.read(WATERMARKS, columns=["last_id"], filter=flt).get_column("last_id")
    return int(cast(int, ids.max())) if ids.len() else 0


def advance_watermark(
    lake: Lake, connection: str, source_table: str, last_id: int, rows: int, batch_id: str, at: datetime
) -> None:
    """Record that every row up to ``last_id`` is in bronze (idempotent on the keys)."""
    row = pl.DataFrame(
        {
            "connection": [connection],
            "source_table": [source_table],
            "last_id": [last_id],
            "rows": [rows],
            "batch_id": [batch_id],
            "advanced_at": [at],
        },
        schema_overrides={"advanced_at": pl.Datetime("ns", "UTC")},
    )
    lake.append_new(WATERMARKS, row)


# ---- mapping ----------------------------------------------------------------------------------
def _symbol_ids(params: Params, column: str) -> pl.Expr:
    """Map the database symbol to a symbol_id: explicit mapping first, else SYMBOL + suffix."""
    raw = pl.col(column).str.strip_chars()
    mapped = (
        raw.replace_strict(params.symbols, default=None, return_dtype=pl.String)
        if params.symbols
        else pl.lit(None, pl.String)
    )
    fallback = (
        raw.str.to_uppercase() + pl.lit(params.default_suffix)
        if params.default_suffix is not None
        else pl.lit(None, pl.String)
    )
    return pl.coalesce(mapped, fallback)


def _raw_json(raw: pl.DataFrame) -> pl.Expr:
    """The delivered row as JSON, ts in ISO 8601 UTC (what quarantine keeps)."""
    ts = pl.from_epoch(pl.col("ts_us"), "us").dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").alias("ts")
    return pl.struct([ts if c == "ts_us" else pl.col(c) for c in raw.columns]).struct.json_encode()


def _ts() -> pl.Expr:
    return pl.from_epoch(pl.col("ts_us"), "us").dt.replace_time_zone("UTC").cast(pl.Datetime("ns", "UTC"))


def map_trades(raw: pl.DataFrame, params: Params) -> pl.DataFrame:
    """stock_trades rows -> bronze.trades payload (+ ``_row`` = id, ``_raw`` = row JSON, ``_sym``)."""
    side = pl.col("side").str.to_lowercase()
    return raw.select(
        _ts().alias("ts"),
        _symbol_ids(params, "symbol").alias("symbol_id"),
        pl.col("price"),
        pl.col("size").cast(pl.Float64),
        pl.when(side == "buy").then(1).when(side == "sell").then(-1).cast(pl.Int8).alias("side"),
        pl.col("exchange"),
        pl.col("conditions"),
        pl.col("id").alias("seq"),
        pl.col("id").alias("_row"),
        _raw_json(raw).alias("_raw"),
        pl.col("symbol").alias("_sym"),
    )


def map_options(raw: pl.DataFrame, params: Params) -> pl.DataFrame:
    """options_data rows -> bronze.options_chain payload (+ ``_row``, ``_raw``, ``_sym``)."""
    kind = pl.col("option_type").str.to_lowercase().str.strip_chars()
    return raw.select(
        _ts().alias("ts"),
        _symbol_ids(params, "underlying").alias("underlying"),
        pl.col("expiry"),
        pl.col("strike"),
        pl.when(kind == "call").then(pl.lit("C")).when(kind == "put").then(pl.lit("P")).alias("right"),
        "bid",
        "ask",
        "last",
        "volume",
        "open_interest",
        pl.col("implied_volatility").alias("iv"),
        "delta",
        "gamma",
        "vega",
        "theta",
        "rho",
        pl.col("id").alias("_row"),
        _raw_json(raw).alias("_raw"),
        pl.col("underlying").alias("_sym"),
        pl.col("option_type").alias("_kind"),
    )


def split_unmapped(mapped: pl.DataFrame, symbol_column: str) -> tuple[pl.DataFrame, list[Rejected]]:
    """Set aside rows the adapter cannot map (no symbol_id, bad option type) with their reason."""
    reasons = [
        pl.when(pl.col(symbol_column).is_null()).then(
            pl.lit("unknown symbol ")
            + pl.col("_sym").fill_null("<null>")
            + pl.lit(" (not in the sql source's symbol mapping)")
        )
    ]
    if "_kind" in mapped.columns:
        reasons.append(
            pl.when(pl.col("right").is_null()).then(
                pl.lit("option_type must be call or put, got ") + pl.col("_kind").fill_null("<null>")
            )
        )
    checked = mapped.with_columns(pl.coalesce(reasons).alias("_why"))
    bad = checked.filter(pl.col("_why").is_not_null())
    good = checked.filter(pl.col("_why").is_null())
    rejected = [
        Rejected(r["_row"], r["_raw"], r["_why"]) for r in bad.select("_row", "_raw", "_why").iter_rows(named=True)
    ]
    return good.drop([c for c in ("_why", "_sym", "_kind") if c in good.columns]), rejected


@dataclass(frozen=True)
class _Reader:
    """One seed table: its query (id range as parameters), the row types it returns, its mapping."""

    table: TableSpec
    select: str
    raw_schema: SchemaDict
    mapper: Callable[[pl.DataFrame, Params], pl.DataFrame]
    symbol_column: str  # the bronze column the mapped symbol lands in


_TS_US = "(extract(epoch FROM ts) * 1000000)::int8 AS ts_us"
READERS: dict[str, _Reader] = {
    "stock_trades": _Reader(
        BRONZE_TRADES,
        f"SELECT id, symbol, {_TS_US}, price::float8, size::int8, exchange, conditions, side"
        " FROM {table} WHERE id > %s AND id <= %s ORDER BY id",
        {
            "id": pl.Int64,
            "symbol": pl.String,
            "ts_us": pl.Int64,
            "price": pl.Float64,
            "size": pl.Int64,
            "exchange": pl.String,
            "conditions": pl.String,
            "side": pl.String,
        },
        map_trades,
        "symbol_id",
    ),
    "options_data": _Reader(
        BRONZE_OPTIONS_CHAIN,
        f"SELECT id, underlying, {_TS_US}, expiry, strike::float8, option_type, bid::float8, ask::float8,"
        " last::float8, volume::float8, open_interest::float8, implied_volatility, delta, gamma, vega, theta, rho"
        " FROM {table} WHERE id > %s AND id <= %s ORDER BY id",
        {
            "id": pl.Int64,
            "underlying": pl.String,
            "ts_us": pl.Int64,
            "expiry": pl.Date,
            "strike": pl.Float64,
            "option_type": pl.String,
            "bid": pl.Float64,
            "ask": pl.Float64,
            "last": pl.Float64,
            "volume": pl.Float64,
            "open_interest": pl.Float64,
            "implied_volatility": pl.Float64,
            "delta": pl.Float64,
            "gamma": pl.Float64,
            "vega": pl.Float64,
            "theta": pl.Float64,
            "rho": pl.Float64,
        },
        map_options,
        "underlying",
    ),
}


# ---- reading ----------------------------------------------------------------------------------
def _range_end(conn, qualified: str, after: int, batch_rows: int) -> int | None:
    """The last id of the next batch: at most ``batch_rows`` ids past ``after`` (None: nothing new)."""
    with conn.cursor() as cur:
        cur.execute(f"SELECT id FROM {qualified} WHERE id > %s ORDER BY id OFFSET %s LIMIT 1", (after, batch_rows - 1))
        row = cur.fetchone()
        if row is None:
            cur.execute(f"SELECT max(id) FROM {qualified} WHERE id > %s", (after,))
            row = cur.fetchone()
    conn.commit()
    return None if row is None or row[0] is None else int(row[0])


class _ChunkStream:
    """The chunks of one id range; ``complete`` turns true once the engine has consumed them all."""

    def __init__(self, conn, ep: Endpoint, name: str, params: Params, lo: int, hi: int):
        self.conn, self.ep, self.name, self.params, self.lo, self.hi = conn, ep, name, params, lo, hi
        self.complete = False
        self.rows = 0

    def __iter__(self) -> Iterator[Chunk]:
        reader, params = READERS[self.name], self.params
        qualified = f"{params.schema_name}.{self.name}"
        with source_errors(self.ep, f"reading {qualified} ids {self.lo + 1}..{self.hi}"):
            try:
                with self.conn.cursor(name=f"mps_{self.name}") as cur:
                    cur.itersize = params.chunk_size
                    cur.execute(reader.select.format(table=qualified), (self.lo, self.hi))
                    while rows := cur.fetchmany(params.chunk_size):
                        raw = pl.DataFrame(rows, schema=reader.raw_schema, orient="row")
                        self.rows += raw.height
                        good, rejected = split_unmapped(reader.mapper(raw, params), reader.symbol_column)
                        yield Chunk(reader.table, good, rejected)
            finally:
                self.conn.rollback()  # read-only transaction; ends the cursor's snapshot
        self.complete = True


def batches(params: Params, clock: Clock, lake: Lake) -> Iterator[Batch]:
    """Yield one batch per table and id range above the stored watermark; advance it after each write."""
    ep = endpoint(params)
    with connect(ep, params) as conn:
        for name in params.tables:
            qualified = f"{params.schema_name}.{name}"
            last = current_watermark(lake, ep.identity, qualified)
            while True:
                with source_errors(ep, f"sizing the next batch of {qualified}"):
                    hi = _range_end(conn, qualified, last, params.batch_rows)
                if hi is None:
                    break
                batch_id = text_batch_id(ep.identity, qualified, last, hi)
                stream = _ChunkStream(conn, ep, name, params, last, hi)
                yield Batch(
                    params.source,
                    f"{ep.identity}/{qualified}?id={last + 1}..{hi}",
                    batch_id,
                    stream,
                    table_hint=READERS[name].table.qualified,
                )
                if not stream.complete:
                    break  # the engine did not finish this range: keep the watermark, re-read next run
                advance_watermark(lake, ep.identity, qualified, hi, stream.rows, batch_id, clock())
                last = hi
