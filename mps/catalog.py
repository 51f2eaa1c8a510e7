"""Every table of the platform, including those declared beside the code that owns them.

Most tables are declared in ``lakehouse.tables``; a few are declared next to their only writer
(the sql source's watermarks, the tick feature set's gold table, whose columns come from the
feature registry). Importing this module registers them all, so ``mps sql`` and ``mps tables``
see every table.
"""

from __future__ import annotations

import importlib

from lakehouse.schema import TableSpec
from lakehouse.tables import TABLES

DECLARING_MODULES = (
    "lakehouse.sources.sql",  # bronze.watermarks
    "lakehouse.webhooks",  # bronze.webhook_deadletters
    "feature_store.tick_features",  # gold.tick_features
    "feature_store.gold",  # gold.features, gold.labels, gold.label_sets
    "backtest.results",  # gold.backtest_runs, gold.backtest_trades, gold.backtest_equity, gold.backtest_metrics
    "lakehouse.monitoring",  # gold.monitoring
)


def all_tables() -> dict[str, TableSpec]:
    """Import the declaring modules and return the complete registry."""
    for module in DECLARING_MODULES:
        importlib.import_module(module)
    return TABLES
