"""The lake's Delta tables are readable by Spark as they are: pyspark + delta-spark gets DuckDB's rows.

The Delta jars come from Maven Central through ``spark.jars.packages``. The pip package's helper
(configure_spark_with_delta_pip) asks for ``delta-spark_4.2_2.13:4.1.0``, which Maven Central does not
publish (Nov 2026); ``delta-spark_2.13:4.1.0`` runs on pyspark 4.2. Skips, saying so, without Java
or the download.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from lakehouse.sql import query

DELTA_JARS = "io.delta:delta-spark_2.13:4.1.0"


@pytest.fixture(scope="module")
def spark():
    if shutil.which("java") is None:
        pytest.skip("no Java on this machine: pyspark needs a JVM (Java 17)")
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master("local[1]")
        .appName("mps-delta-read")
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.jars.packages", DELTA_JARS)
    )
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # the jar download (Maven Central) or the JVM failed
        pytest.skip(f"Spark with Delta could not start (Maven Central download needed): {exc}")
    yield session
    session.stop()


@pytest.mark.slow
def test_spark_reads_gold_features_with_the_same_rows_as_duckdb(spark, lake):
    from feature_store.tick_features import FEATURE_NAMES, FEATURE_SET, GOLD_TICK_FEATURES, write_features

    n, rng = 50, np.random.default_rng(5)
    end = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)
    ts = [end - timedelta(seconds=n - 1 - i) for i in range(n)]
    frames = [
        pl.DataFrame(
            {
                "symbol_id": [s] * n,
                "tf": ["1s"] * n,
                "ts": ts,
                "known_at": ts,
                "feature_set": [FEATURE_SET] * n,
                **{f: rng.normal(0, 1, n) for f in FEATURE_NAMES},
            }
        )
        for s in ("SIM1:SIM", "SIM2:SIM")
    ]
    write_features(lake, pl.concat(frames).with_columns(pl.col("ts", "known_at").dt.cast_time_unit("ns")))
    cols = ["symbol_id", "ts", *FEATURE_NAMES[:3]]
    duck = query(lake, f"SELECT symbol_id, epoch_ns(ts) AS ts, {', '.join(FEATURE_NAMES[:3])} FROM gold.tick_features")
    sdf = spark.read.format("delta").load(lake.uri(GOLD_TICK_FEATURES)).select(*cols)
    spark_rows = sorted(tuple(r) for r in sdf.collect())
    duck_rows = sorted(duck.rows())
    assert len(spark_rows) == 2 * n and spark_rows == duck_rows
