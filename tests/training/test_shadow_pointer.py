"""Shadow: a registered version's pointer goes to ``challenger.<model>`` in the real NATS KV bucket.

The champion's alias and pointer stay where they are; clearing deletes only the challenger key.
"""

from __future__ import annotations

import asyncio
import json

import jsonschema
import nats
import pytest
from nats.js.errors import KeyNotFoundError
from test_promotion import NAME, POINTER_SCHEMA, read_pointer, register

from feature_store.contract import STREAMING
from feature_store.messages import models_bucket
from training.gates import Decision, GateResult
from training.promotion import PromotionError, apply_decision, clear_shadow, nats_publisher, shadow
from training.tracking import CHAMPION


def read_key(url: str, key: str) -> dict | None:
    async def go():
        nc = await nats.connect(url)
        try:
            entry = await (await models_bucket(nc.jetstream())).get(key)
            return json.loads(entry.value) if entry.value else None
        except KeyNotFoundError:
            return None
        finally:
            await nc.close()

    return asyncio.run(go())


def test_shadow_writes_the_challenger_pointer_and_leaves_the_champion(tracker, nats_server, tmp_path):
    models = tmp_path / "models"
    v1 = register(tracker, tmp_path, scale=1.0)
    passed = Decision((GateResult("ece", "pass", 0.01, 0.05, ""),), score=0.0)
    apply_decision(
        tracker, NAME, v1, passed, models_dir=models, publish=nats_publisher(nats_server.url), promoted_at_ns=1
    )
    champion = read_pointer(nats_server.url)

    v2 = register(tracker, tmp_path, scale=1.5)
    pointer = shadow(
        tracker, NAME, v2, models_dir=models, publish=nats_publisher(nats_server.url, role="challenger"), at_ns=2
    )
    stored = read_key(nats_server.url, STREAMING.challenger_key(NAME))
    assert stored == pointer and stored["model_version"] == v2
    jsonschema.validate(stored, POINTER_SCHEMA)
    assert read_pointer(nats_server.url) == champion and tracker.alias(NAME, CHAMPION) == v1

    clear_shadow(nats_server.url, NAME)
    assert read_key(nats_server.url, STREAMING.challenger_key(NAME)) is None
    assert read_pointer(nats_server.url) == champion


def test_a_pointer_role_other_than_champion_or_challenger_is_refused():
    with pytest.raises(PromotionError, match="pointer role 'canary'"):
        nats_publisher("nats://127.0.0.1:1", role="canary")
