"""Quality gates for silver writes: suites declared once per table, validated with Great Expectations.

- ``suites``: the expectations of each silver table and the derived columns they read;
- ``derive``: vectorised polars statistics (per-series time steps, jump z-scores, volume excess);
- ``runner``: one batch through an ephemeral GE context (pandas), results per expectation;
- ``gate``: validate, quarantine failing rows, persist results, return the passing rows;
- ``docs``: a browsable static HTML site of the persisted results and quarantined rows.
"""

from lakehouse.quality.gate import GateResult, gate
from lakehouse.quality.rules import DEFAULT_RULES, QualityRules

__all__ = ["DEFAULT_RULES", "GateResult", "QualityRules", "gate"]
