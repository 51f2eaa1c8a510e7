"""No look-ahead for every tick_v2 feature, on real BAC ticks (hypothesis picks the cut and the edit).

Changing prices or sizes, deleting prints or quotes, or adding ticks after a cut t leaves every row
at or before t unchanged, in the batch path and in the incremental featurizer alike.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from parity_helpers import as_frame, stream

from feature_store.tick.batch import tick_features

OPEN = datetime(2013, 10, 7, 13, 30, tzinfo=UTC)
UNTIL_NS = int((OPEN + timedelta(minutes=8)).timestamp()) * 10**9


@pytest.fixture(scope="module")
def first_minutes(bac_ticks):
    """The first 8 minutes of the session (and 5 before the open)."""
    end = OPEN + timedelta(minutes=8)
    trades, quotes = (f.filter(pl.col("ts") < end) for f in bac_ticks)
    return trades, quotes, tick_features(trades, quotes, until_ns=UNTIL_NS), as_frame(stream(trades, quotes).out)


def _edit(frame: pl.DataFrame, cut: datetime, how: str, column: str | None) -> pl.DataFrame:
    after = pl.col("ts") > cut
    if how == "delete":
        return frame.filter(~after)
    if how == "scale" and column:
        return frame.with_columns(pl.when(after).then(pl.col(column) * 1.07).otherwise(pl.col(column)).alias(column))
    if how == "duplicate":
        return pl.concat([frame, frame.filter(after).with_columns(pl.col("seq") + 10_000)])
    return frame


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cut_s=st.integers(min_value=5, max_value=470),
    trade_edit=st.sampled_from([("delete", None), ("scale", "price"), ("scale", "size"), ("duplicate", None)]),
    quote_edit=st.sampled_from([("none", None), ("delete", None), ("scale", "bid"), ("scale", "ask_size")]),
)
def test_later_ticks_never_change_earlier_rows(first_minutes, cut_s, trade_edit, quote_edit):
    trades, quotes, base, reference = first_minutes
    cut = OPEN + timedelta(seconds=cut_s)
    edited_trades, edited_quotes = _edit(trades, cut, *trade_edit), _edit(quotes, cut, *quote_edit)
    batch = tick_features(edited_trades, edited_quotes, until_ns=UNTIL_NS)
    early = pl.col("ts") <= cut
    assert batch.filter(early).equals(base.filter(early)), f"batch row at or before {cut} changed"
    streamed = as_frame(stream(edited_trades, edited_quotes).out)
    cut_ns = int(cut.timestamp() * 10**9)
    assert streamed.filter(pl.col("ts") <= cut_ns).equals(reference.filter(pl.col("ts") <= cut_ns))
