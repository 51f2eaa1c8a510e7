"""Isolated prints: single trades far from both neighbours in the vendor's own stream (bad prints).

A bad print is one trade that jumps away from the vendor's previous print and comes straight back
at the next one: both log moves exceed ``k`` times the series' typical move (the 90th percentile of
its non-zero tick-to-tick moves, so bid-ask bounce and regime changes stay far below it) and
``floor_bps``, and they point the same way. A frozen feed is the opposite pattern: it REPEATS a
price, and when it thaws the price steps once to the market and stays there; neither end of a
frozen window makes an isolated print, so the consensus can tell a stale vendor (late, but its
prints were real) from a bad print (a price that never traded).

The first and last print of a series have one neighbour only and are never called isolated; two
bad prints in a row are not isolated either (the consensus still leaves their deviating fields
out of its medians; it only cannot blame them on a bad print).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
from polars._typing import SchemaDict

from lakehouse.reconcile.bars import build_bars

PAIR = ["source", "symbol_id"]
PRINT_SCHEMA: SchemaDict = {
    "source": pl.String,
    "symbol_id": pl.String,
    "ts": pl.Datetime("ns", "UTC"),
    "price": pl.Float64,
}
ISOLATED_BAR_SCHEMA: SchemaDict = {
    "source": pl.String,
    "symbol_id": pl.String,
    "tf": pl.String,
    "ts": pl.Datetime("ns", "UTC"),
    "iso_open": pl.Float64,
    "iso_high": pl.Float64,
    "iso_low": pl.Float64,
    "iso_close": pl.Float64,
}


@dataclass(frozen=True)
class PrintScreen:
    """Which (source, symbol) tick streams were screened, and the isolated prints found in them."""

    screened: pl.DataFrame  # source, symbol_id
    isolated: pl.DataFrame  # PRINT_SCHEMA

    def bars(self, tf: str, calendars: dict[str, str]) -> pl.DataFrame:
        """Place the isolated prints in ``tf`` bar slots: first, highest, lowest and last per bar.

        A bar field set by a bad print equals one of these exactly (the bad print is the bar's
        open, high, low or close), which is how the consensus recognises it.
        """
        if self.isolated.height == 0:
            return pl.DataFrame(schema=ISOLATED_BAR_SCHEMA)
        built = build_bars(self.isolated.with_columns(pl.lit(0.0).alias("size")), tf, calendars).bars
        return built.select(
            "source", "symbol_id", "tf", "ts", *[pl.col(f).alias(f"iso_{f}") for f in ("open", "high", "low", "close")]
        )


def screen_prints(ticks: pl.DataFrame, k: float = 15.0, floor_bps: float = 20.0) -> PrintScreen:
    """Find isolated prints in ticks (source, symbol_id, ts, price); rows keep their order within a stamp."""
    if ticks.height == 0:
        return PrintScreen(
            pl.DataFrame(schema={"source": pl.String, "symbol_id": pl.String}), pl.DataFrame(schema=PRINT_SCHEMA)
        )
    # One (source, symbol) stream at a time, sorted by time only: sorting 30M rows by two string
    # keys and windowing over them cost several times more than the screen itself.
    parts = ticks.select(*PAIR, "ts", "price").partition_by(PAIR, as_dict=True, maintain_order=True)
    threshold_floor = floor_bps * 1e-4
    found = []
    for key in sorted(parts):
        found.append(_isolated_in_stream(parts[key].sort("ts", maintain_order=True), k, threshold_floor))
    isolated = pl.concat(found) if found else pl.DataFrame(schema=PRINT_SCHEMA)
    pairs = pl.DataFrame(sorted(parts), schema=PAIR, orient="row")
    return PrintScreen(pairs, isolated.cast(pl.Schema(PRINT_SCHEMA)))


def _isolated_in_stream(stream: pl.DataFrame, k: float, floor: float) -> pl.DataFrame:
    """Prints of one time-ordered stream that jump away from both neighbours the same way."""
    logp = pl.col("price").log()
    moves = stream.with_columns((logp - logp.shift(1)).alias("_back"), (logp - logp.shift(-1)).alias("_fwd"))
    scale = moves.filter(pl.col("_back") != 0).select(pl.col("_back").abs().quantile(0.9)).item()
    threshold = max(k * (scale or 0.0), floor)
    return moves.filter(
        (pl.col("_back").sign() == pl.col("_fwd").sign())
        & (pl.min_horizontal(pl.col("_back").abs(), pl.col("_fwd").abs()) > threshold)
    ).select(PRINT_SCHEMA.keys())
