"""HTML report of a backtest: PNG plots (equity, drawdown, return distribution, exposure), metrics with
CIs, the what-if table and the run's identity. Plots use matplotlib's Agg backend (no display)."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import polars as pl

from backtest.engine import BacktestResult
from backtest.metrics import Daily


def _plots(result: BacktestResult, daily: Daily, out: Path) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    eq = result.equity
    ts = eq["ts"].dt.replace_time_zone(None).to_numpy()
    nav = eq["nav"].to_numpy()
    peak = np.maximum.accumulate(nav)
    figures = {
        "equity.png": ("Equity (NAV)", lambda ax: ax.plot(ts, nav, lw=0.8)),
        "drawdown.png": ("Drawdown", lambda ax: ax.fill_between(ts, nav / peak - 1.0, 0.0, color="firebrick", lw=0)),
        "returns.png": ("Daily returns", lambda ax: ax.hist(daily.ret, bins=60, color="steelblue")),
        "exposure.png": ("Gross exposure / NAV", lambda ax: ax.plot(ts, eq["gross"].to_numpy() / nav, lw=0.6)),
    }
    paths = {}
    for name, (title, draw) in figures.items():
        fig, ax = plt.subplots(figsize=(9, 3.2), dpi=90)
        draw(ax)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / name)
        plt.close(fig)
        paths[name] = str(out / name)
    return paths


def _table(frame: pl.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    body = []
    for row in frame.iter_rows():
        cells = "".join(f"<td>{v:.6g}</td>" if isinstance(v, float) else f"<td>{html.escape(str(v))}</td>" for v in row)
        body.append(f"<tr>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def write_report(
    result: BacktestResult,
    daily: Daily,
    metrics: pl.DataFrame,
    what_if: pl.DataFrame | None,
    out_dir: str | Path,
    *,
    title: str = "Backtest",
    extra: dict | None = None,
) -> dict[str, str]:
    """Write ``report.html`` and its PNGs into ``out_dir``; return the paths (for MLflow to log)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = _plots(result, daily, out)
    info = {
        "run_id": result.run_id,
        "result_hash": result.result_hash,
        "events": result.n_events,
        "fills": result.trades.filter(pl.col("kind") == "fill").height,
        "kill switch events": result.kills.height,
        "final NAV": float(result.equity["nav"][-1]),
        **result.inputs,
        **(extra or {}),
    }
    info_rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(json.dumps(v, default=str))}</td></tr>"
        for k, v in info.items()
    )
    images = "".join(f'<img src="{name}" alt="{name}"><br>' for name in paths)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}</style></head><body>
<h1>{html.escape(title)}</h1><table>{info_rows}</table>
<h2>Metrics ({int(metrics["level"][0] * 100) if metrics.height else 95}% clustered bootstrap CIs)</h2>{_table(metrics)}
<h2>What if fees and slippage were different</h2>{_table(what_if) if what_if is not None else "<p>not run</p>"}
<h2>Plots</h2>{images}
<h2>Settings</h2><pre>{html.escape(json.dumps(result.settings.model_dump(mode="json"), indent=2))}</pre>
</body></html>"""
    report = out / "report.html"
    report.write_text(page)
    return {"report": str(report), **paths}
