"""Run a suite's expectations on one batch with an ephemeral Great Expectations context.

GE 1.x has no polars support, so the batch is validated as a pandas frame with a RangeIndex: the
``unexpected_index_list`` of each result is then the 0-based row position in the batch.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

import great_expectations as gx
import great_expectations.expectations as gxe
import pandas as pd
from great_expectations.data_context.types.base import ProgressBarsConfig

from lakehouse.quality.suites import columns, label

_DETAIL_SAMPLE = 20  # indices and values kept in the persisted JSON (the counts are exact)


@dataclass(frozen=True)
class Outcome:
    """The result of one expectation on one batch."""

    expectation: str  # unique label: type:columns
    type: str
    columns: tuple[str, ...]
    success: bool
    element_count: int
    unexpected_count: int
    unexpected_index: list[int] = field(repr=False)
    details: str = field(repr=False)

    @property
    def column(self) -> str:
        return ",".join(self.columns)


_STATE: dict = {}


def _context():
    """One ephemeral context per process (each new one creates a temporary docs directory)."""
    if "context" not in _STATE:
        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        _STATE["context"], _STATE["source"], _STATE["n"] = context, context.data_sources.add_pandas("mps"), 0
    _STATE["n"] += 1
    return _STATE["context"], _STATE["source"], f"{_STATE['n']}"


def _details(result_dict: dict) -> str:
    result = dict(result_dict.get("result") or {})
    for key in ("unexpected_index_list", "unexpected_list", "partial_unexpected_index_list", "partial_unexpected_list"):
        if key in result and isinstance(result[key], list):
            result[key] = result[key][:_DETAIL_SAMPLE]
    result.pop("unexpected_index_query", None)
    # Drop what differs between identical runs (GE's ids and the per-call batch name).
    config = {k: v for k, v in (result_dict.get("expectation_config") or {}).items() if k != "id"}
    config["kwargs"] = {k: v for k, v in (config.get("kwargs") or {}).items() if k != "batch_id"}
    out = {"expectation_config": config, "result": result, "exception_info": result_dict.get("exception_info")}
    return json.dumps(out, default=str, sort_keys=True)


def run_expectations(suite_name: str, frame: pd.DataFrame, expectations: list[gxe.Expectation]) -> list[Outcome]:
    """Validate ``frame`` against ``expectations``; return one outcome per expectation, in order.

    An expectation that raises inside GE (a missing column, a type it cannot compare) comes back
    as a failure with every row unexpected, so a broken check can never pass silently.
    """
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    frame = frame.reset_index(drop=True)
    context, source, n = _context()
    name = f"{suite_name}#{n}"
    asset = source.add_dataframe_asset(name)
    batch_def = asset.add_batch_definition_whole_dataframe("batch")
    suite = context.suites.add(gx.ExpectationSuite(name=name))
    by_id: dict[str, gxe.Expectation] = {}
    for e in expectations:
        added = suite.add_expectation(e)
        by_id[str(added.id)] = added
    validation = context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch_def, suite=suite))
    try:
        report = validation.run(
            batch_parameters={"dataframe": frame},
            result_format={"result_format": "COMPLETE", "include_unexpected_rows": False},
        )
    finally:
        context.validation_definitions.delete(name)
        context.suites.delete(name)
        source.delete_asset(name)
    outcomes = []
    for r in report.results:
        e = by_id[str(r.expectation_config.id)]
        raw = r.to_json_dict()
        failed_hard = bool((raw.get("exception_info") or {}).get("raised_exception"))
        res = r.result or {}
        index = list(range(len(frame))) if failed_hard else [int(i) for i in res.get("unexpected_index_list") or []]
        outcomes.append(
            Outcome(
                expectation=label(e),
                type=e.expectation_type,
                columns=tuple(columns(e)),
                success=bool(r.success) and not failed_hard,
                element_count=int(res.get("element_count", len(frame))),
                unexpected_count=len(frame) if failed_hard else int(res.get("unexpected_count") or 0),
                unexpected_index=index,
                details=_details(raw),
            )
        )
    return outcomes
