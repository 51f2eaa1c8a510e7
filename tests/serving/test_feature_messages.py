"""FeatureUpdate wire format (contracts/feature_update.schema.json)."""

from __future__ import annotations

import json

import jsonschema
import pytest
from scorer_helpers import CONTRACTS, make_update

from core.errors import ContractError
from feature_store.contract import STREAMING
from feature_store.messages import FeatureUpdate, decode, encode

SCHEMA = json.loads((CONTRACTS / "feature_update.schema.json").read_text())


def test_roundtrip_and_schema():
    u = make_update("ESZ13:CME", 4, ts=1_700_000_000_000_000_000)
    payload = encode(u)
    jsonschema.validate(json.loads(payload), SCHEMA)
    assert decode(payload) == u
    assert u.subject == STREAMING.subject("features", tf="1s", symbol="ESZ13:CME")


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda d: d.update(values=[1.0, float("nan")]), "finite|JSON"),
        (lambda d: d.update(extra=1), "fields"),
        (lambda d: d.pop("seq"), "fields"),
        (lambda d: d.update(seq="3"), "integer"),
        (lambda d: d.update(symbol_id="A.B"), "subject token"),
    ],
)
def test_decode_rejects_contract_violations(mutate, match):
    raw = json.loads(encode(make_update("AAPL:US", 1, ts=1)))
    mutate(raw)
    with pytest.raises(ContractError, match=match):
        decode(json.dumps(raw).encode())


def test_encode_refuses_non_finite_values():
    u = FeatureUpdate("AAPL:US", "1s", 1, 1, "tick_v1", (1.0, float("inf")), 0)
    with pytest.raises(ContractError):
        encode(u)
