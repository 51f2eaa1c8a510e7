"""``mps featurize`` and ``mps profile``: build gold features and labels, and profile a lake.

Registered on the main app by ``mps.cli`` (``register(app)``); heavy imports stay inside the commands.
"""

from __future__ import annotations

from pathlib import Path

import typer

from core.errors import ConfigError, MpsError
from core.timetypes import parse_utc

_time = parse_utc


def register(app: typer.Typer) -> None:
    """Add the gold commands to ``app``."""
    from mps.cli import LakeOpt, ProfileOpt, _fail, _lake, _prefect_env, console

    @app.command()
    def featurize(
        start: str | None = typer.Option(None, help="window start, ISO-8601 UTC (default: all history)"),
        end: str | None = typer.Option(None, help="window end (inclusive), ISO-8601 UTC"),
        tf: str = typer.Option("1d", "--tf", help="bar timeframe"),
        feature_set: list[str] = typer.Option(
            ["bar_v1", "curve_v1"], "--feature-set", help="feature sets (repeatable; curve_v1 reads the futures)"
        ),
        symbol: list[str] = typer.Option([], "--symbol", help="only these symbol_ids (repeatable)"),
        label_set: str | None = typer.Option("ret_bars_v1", help="label set name ('' for none)"),
        horizon: list[int] = typer.Option([1, 5, 21], "--horizon", help="label horizons in bars (repeatable)"),
        profile: str = ProfileOpt,
        lake_root: str | None = LakeOpt,
    ) -> None:
        """Run the featurize flow: silver raw bars -> gold.features (point in time) and gold.labels.

        ``--tf 1s`` runs the featurize-ticks flow instead: tick_v2 from bronze ticks and ret_tick_v1
        labels (mid-quote returns where the main source sends quotes) for ``[start, end)``.
        """
        try:
            _prefect_env(profile)
            from flows.featurize import featurize as featurize_flow

            lake = _lake(profile, lake_root)
            if tf == "1s":
                from flows.featurize_ticks import featurize_ticks

                if start is None or end is None:
                    raise ConfigError("--tf 1s needs --start and --end (the tick window, end exclusive)")
                written = featurize_ticks(_time(start), _time(end), symbol or None, lake.root, profile)
                for name, rows in written.items():
                    console.print(f"{name}: {rows:,} rows")
                return
            written = featurize_flow(
                _time(start),
                _time(end),
                tf=tf,
                feature_sets=feature_set,
                symbols=symbol or None,
                label_set=label_set or None,
                label_horizons=horizon,
                lake_root=lake.root,
                profile=profile,
            )
        except MpsError as exc:
            _fail(exc)
            return
        if not written:
            console.print(f"no raw {tf} bars in silver.bars: nothing to featurize")
        for name, rows in written.items():
            console.print(f"{name}: {rows:,} rows")

    @app.command(name="profile")
    def profile_cmd(
        out: Path = typer.Option(Path("reports/profile"), "--out", help="report folder (Markdown)"),
        calendar: str = typer.Option("XNYS", help="exchange calendar the gaps are measured against"),
        profile: str = ProfileOpt,
        lake_root: str | None = LakeOpt,
    ) -> None:
        """Profile the lake: data dictionary, quality report (coverage, gaps, volume) and sample SQL, as Markdown."""
        try:
            from feature_store.data_profile import write_profile

            lake = _lake(profile, lake_root)
            files = write_profile(lake, out, calendar)
        except MpsError as exc:
            _fail(exc)
            return
        for f in files:
            console.print(f"wrote {f}")
