"""Browsable HTML of every persisted validation: runs, expectations, and the rows they quarantined.

The site is rendered from the lake (``silver.quality_results`` and the ``quality`` rows of
``bronze.quarantine``), not from GE's in-memory stores, so it covers every run ever persisted and
works the same on a local or an S3 lake. ``build_docs`` rewrites the whole site each time.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import polars as pl
import pyarrow.compute as pc

from lakehouse.quality.gate import SOURCE
from lakehouse.storage import Lake
from lakehouse.tables import BRONZE_QUARANTINE, SILVER_QUALITY_RESULTS

ROWS_PER_EXPECTATION = 50

_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;font-size:13px;vertical-align:top}
th{background:#f2f2f2}.fail{color:#b00020;font-weight:600}.ok{color:#1b7f3b}code{font-size:12px}"""


def _page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _status(ok: bool) -> str:
    return "<span class='ok'>passed</span>" if ok else "<span class='fail'>FAILED</span>"


def run_file(run_id: str, table: str) -> str:
    """The file name of one run's page (safe for any run id)."""
    return "run_" + re.sub(r"[^A-Za-z0-9_.-]", "_", f"{table}__{run_id}") + ".html"


def _run_page(run_id: str, table: str, results: pl.DataFrame, quarantined: pl.DataFrame) -> str:
    rows = [
        [
            html.escape(r["expectation"]),
            html.escape(r["column"] or ""),
            _status(r["success"]),
            f"{r['element_count']:,}",
            f"{r['unexpected_count']:,}",
            f"<details><summary>result</summary><code>{html.escape(r['details'])}</code></details>",
        ]
        for r in results.sort("success", "expectation").iter_rows(named=True)
    ]
    body = [
        f"<p><a href='index.html'>all runs</a> &middot; table <b>{html.escape(table)}</b> &middot; "
        f"validated at {results['validated_at'].max()!s}</p>",
        _table(["expectation", "column", "status", "rows", "unexpected", "details"], rows),
    ]
    if quarantined.height:
        body.append("<h2>Quarantined rows</h2>")
        for reason, group in quarantined.sort("row").group_by("reason", maintain_order=True):
            shown = group.head(ROWS_PER_EXPECTATION)
            body.append(
                f"<h3>{html.escape(reason[0])} ({group.height:,} rows"
                f"{', first ' + str(shown.height) if shown.height < group.height else ''})</h3>"
            )
            body.append(
                _table(
                    ["row", "raw"],
                    [[str(r["row"]), f"<code>{html.escape(r['raw'])}</code>"] for r in shown.iter_rows(named=True)],
                )
            )
    return _page(f"Quality run {run_id}", "".join(body))


def build_docs(lake: Lake, out_dir: str | Path) -> Path:
    """Render the quality site under ``out_dir``; return the path of its ``index.html``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = lake.read(SILVER_QUALITY_RESULTS)
    quarantine = lake.read(BRONZE_QUARANTINE, filter=pc.field("source") == SOURCE)
    runs = (
        results.group_by("run_id", "table")
        .agg(
            pl.col("validated_at").max(),
            pl.len().alias("expectations"),
            (~pl.col("success")).sum().alias("failed"),
            pl.col("element_count").max().alias("rows"),
        )
        .sort("validated_at", "table", descending=[True, False])
    )
    index_rows = []
    for run in runs.iter_rows(named=True):
        name = run_file(run["run_id"], run["table"])
        mine = results.filter((pl.col("run_id") == run["run_id"]) & (pl.col("table") == run["table"]))
        q = quarantine.filter((pl.col("batch_id") == run["run_id"]) & (pl.col("table") == run["table"]))
        (out / name).write_text(_run_page(run["run_id"], run["table"], mine, q))
        index_rows.append(
            [
                f"<a href='{name}'>{html.escape(run['run_id'])}</a>",
                html.escape(run["table"]),
                str(run["validated_at"]),
                f"{run['rows'] or 0:,}",
                str(run["expectations"]),
                _status(run["failed"] == 0) + (f" ({run['failed']})" if run["failed"] else ""),
                f"{q.get_column('row').n_unique():,}",
            ]
        )
    summary = f"<p>{runs.height:,} validation runs persisted in {html.escape(lake.uri(SILVER_QUALITY_RESULTS))}</p>"
    index = _table(["run", "table", "validated at", "rows", "expectations", "status", "rows quarantined"], index_rows)
    path = out / "index.html"
    path.write_text(_page("MPS data quality", summary + index))
    return path
