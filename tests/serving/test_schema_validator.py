"""schema_check.validator (the compiled predicate the signal sink runs per Signal) accepts exactly
what schema_check.errors accepts, on the shipped contracts and on random mutations of valid values."""

from __future__ import annotations

import copy
import json
import time

from hypothesis import given, settings
from hypothesis import strategies as st
from scorer_helpers import CONTRACTS, MODEL_V1, make_update

from backtest.reference_scorer import ReferenceScorer
from feature_store import schema_check
from feature_store.messages import encode


def _valid_examples() -> dict[str, dict]:
    signal = ReferenceScorer(MODEL_V1).score([make_update("AAPL:US", 3)], time.time_ns())[0]
    return {
        "signal.schema.json": {**signal, "published_at": time.time_ns()},
        "feature_update.schema.json": json.loads(encode(make_update("MSFT:US", 5))),
        "sizing.schema.json": json.loads((CONTRACTS / "sizing.json").read_text()),
        "streaming.schema.json": json.loads((CONTRACTS / "streaming.json").read_text()),
    }


EXAMPLES = _valid_examples()
ODD = st.one_of(
    st.sampled_from([float("nan"), float("inf"), -float("inf"), 1.0, 0, -1, True, 2**64, "", "x"]),
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)


def _paths(value, prefix=()):
    """Every (container path, key) inside a JSON value."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield prefix, k
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield prefix, i
            yield from _paths(v, (*prefix, i))


def _at(value, path):
    for p in path:
        value = value[p]
    return value


@settings(max_examples=600, deadline=None)
@given(
    name=st.sampled_from(sorted(EXAMPLES)),
    edits=st.lists(st.tuples(st.integers(min_value=0), st.sampled_from(["set", "drop", "add"]), ODD), max_size=3),
)
def test_the_compiled_validator_agrees_with_errors(name, edits):
    schema = schema_check.load_schema(name)
    value = copy.deepcopy(EXAMPLES[name])
    for pick, action, new in edits:
        paths = list(_paths(value))
        if not paths:
            break
        where, key = paths[pick % len(paths)]
        parent = _at(value, where)
        if action == "set":
            parent[key] = new
        elif action == "drop" and isinstance(parent, dict):
            del parent[key]
        elif action == "add" and isinstance(parent, dict):
            parent[f"extra_{pick % 3}"] = new
    problems = schema_check.errors(value, schema)
    assert schema_check.validator(schema)(value) == (not problems), problems


def test_the_shipped_examples_are_valid_and_a_refusal_is_worded():
    for name, value in EXAMPLES.items():
        assert schema_check.compiled(name)(value), name
    bad = {**EXAMPLES["signal.schema.json"], "prob_up": 1.5}
    assert not schema_check.compiled("signal.schema.json")(bad)
    assert any("prob_up" in p for p in schema_check.errors(bad, schema_check.load_schema("signal.schema.json")))
