"""Walk-forward distributions become engine targets through the scorer's sizing (backtest/sizing.py)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from backtest.sizing import RiskState, SizingConfig, position_size
from backtest.targets import bucket_returns, size_signals
from core.errors import ConfigError

EDGES = np.linspace(-50.0, 50.0, 102)


def gaussian(mean_bps: float, sd_bps: float) -> list[float]:
    mid = 0.5 * (EDGES[:-1] + EDGES[1:])
    p = np.exp(-0.5 * ((mid - mean_bps) / sd_bps) ** 2)
    return (p / p.sum()).tolist()


def test_sizes_equal_the_scorer_formula_row_by_row():
    cfg = SizingConfig.load()
    probs = [gaussian(m, 12.0) for m in (-6.0, -0.2, 0.0, 0.3, 4.0)]
    frame = pl.DataFrame({"symbol_id": "A:US", "ts": np.arange(5), "probs": probs, "realized_vol": [0.3] * 5})
    sized = size_signals(frame, EDGES, cfg, nav=1e6)["size"].to_list()
    want = [
        position_size(
            cfg,
            RiskState(nav=1e6),
            probs=p,
            returns=bucket_returns(EDGES),
            realized_vol=0.3,
            adv_notional=None,
            guard=None,
        ).size
        for p in probs
    ]
    assert sized == want
    assert sized[0] < 0 < sized[-1] and sized[2] == 0.0


def test_sized_frames_pass_through_and_bad_rows_are_named():
    cfg = SizingConfig.load()
    ready = pl.DataFrame({"symbol_id": ["A:US"], "ts": [1], "size": [0.01]})
    assert size_signals(ready, EDGES, cfg) is ready
    bad = pl.DataFrame({"symbol_id": ["A:US"], "ts": [1], "probs": [[0.5, 0.5]]})
    with pytest.raises(ConfigError, match="row 0"):
        size_signals(bad, EDGES, cfg)
