"""Delta predicates from typed values: the right rows go, whatever the symbols contain."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import TableError
from core.timetypes import TS
from lakehouse.predicates import between, eq, isin, keys_match, literal, where
from lakehouse.schema import TableSpec, col
from lakehouse.storage import Lake

SPEC = TableSpec(
    "test",
    "symbols",
    (col("symbol_id", pa.large_string()), col("ts", TS), col("value", pa.float64())),
    keys=("symbol_id", "ts"),
    lineage=False,
)

# Printable text including quotes, spaces, backslashes and SQL keywords: what a hostile symbol looks like.
symbols = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=12
) | st.sampled_from(["O'NEIL CO:US", "A' OR '1'='1", "x'); DROP TABLE t; --", "  ", "\\'", "ES:CME"])


def frame(names: list[str], value: float) -> pl.DataFrame:
    ts = [datetime(2024, 1, 2, 15, 0, i, tzinfo=UTC) for i in range(2)]
    return pl.DataFrame(
        {"symbol_id": [n for n in names for _ in ts], "ts": ts * len(names), "value": value},
        schema={"symbol_id": pl.String, "ts": pl.Datetime("ns", "UTC"), "value": pl.Float64},
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(symbols, min_size=2, max_size=4, unique=True), pick=st.integers(0, 3))
def test_replace_window_touches_only_the_named_symbol(tmp_path_factory, names, pick):
    lake = Lake(str(tmp_path_factory.mktemp("lake")))
    lake.append(SPEC, frame(names, 1.0))
    target = names[pick % len(names)]

    lake.replace_window(SPEC, frame([target], 2.0), where(symbol_id=target))

    got = lake.read(SPEC).sort("symbol_id", "ts")
    assert got.height == 2 * len(names)
    for name in names:
        values = got.filter(pl.col("symbol_id") == name)["value"].to_list()
        assert values == ([2.0, 2.0] if name == target else [1.0, 1.0]), name


def test_isin_and_between_select_exactly_their_rows(tmp_path):
    lake = Lake(str(tmp_path))
    names = ["A B", "C'D", "E"]
    lake.append(SPEC, frame(names, 1.0))
    lo = datetime(2024, 1, 2, 15, 0, 1, tzinfo=UTC)
    pred = isin("symbol_id", ["A B", "C'D"]) & between("ts", lo, lo)
    lake.replace_window(SPEC, frame(["A B"], 3.0).filter(pl.col("ts") == lo), pred)
    got = lake.read(SPEC)
    assert got.height == 5  # C'D at lo is gone, A B at lo replaced
    assert got.filter(pl.col("value") == 3.0).height == 1


@pytest.mark.parametrize(
    ("value", "sql"),
    [
        ("O'NEIL", "'O''NEIL'"),
        (3, "3"),
        (True, "true"),
        (2.5, "2.5"),
        (datetime(1970, 1, 1, 0, 0, 1, 5, tzinfo=UTC), "1000005000"),
        (datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "-1000"),
    ],
)
def test_literals_are_typed(value, sql):
    assert literal(value) == sql


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), datetime(2024, 1, 1), object()])
def test_unsafe_values_are_refused(bad):
    with pytest.raises(TableError):
        literal(bad)


def test_column_names_must_be_identifiers():
    with pytest.raises(TableError, match="plain column name"):
        eq("symbol_id = 'x' OR 1=1 --", "y")
    assert keys_match(["symbol_id", "ts"]).sql == "t.symbol_id = s.symbol_id AND t.ts = s.ts"
    assert isin("tf", []).sql == "false"


def test_another_lake_root_keeps_the_profiles_storage_options():
    from core.profile import LakeConfig, MlflowConfig, Profile

    profile = Profile(
        name="s3",
        lake=LakeConfig(root="s3://bucket/lake", storage_options={"aws_endpoint_url": "http://127.0.0.1:9"}),
        mlflow=MlflowConfig(tracking_uri="sqlite:///m.db", artifact_root="a"),
    )
    lake = Lake.from_profile(profile, root="s3://other/lake")
    assert lake.root == "s3://other/lake" and lake.storage_options["aws_endpoint_url"] == "http://127.0.0.1:9"
