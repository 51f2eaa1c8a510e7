"""FeatureUpdate messages (contracts/feature_update.schema.json) and publishing them to NATS.

One FeatureUpdate per symbol per step goes to the contract's ``features`` subject; the scorer answers
each with a Signal on its ``signals`` subject. Subjects, streams and the models KV bucket come from
contracts/streaming.json (``feature_store.contract.STREAMING``): nothing here spells one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

from core.errors import ContractError
from feature_store.contract import STREAMING

# stream name -> its subject filters, e.g. {"FEATURES": ["features.v1.>"], ...}
STREAMS: dict[str, list[str]] = {name: STREAMING.stream_subjects(name) for name in STREAMING.streams}
MAX_SEQ = 2**53 - 1  # exact in every JSON reader (contracts/feature_update.schema.json)
_FIELDS = ("symbol_id", "tf", "ts", "known_at", "feature_set", "values", "seq")
_BAD_TOKEN_CHARS = set(".*> \t\r\n")


@dataclass(frozen=True)
class FeatureUpdate:
    """One feature vector of one symbol at one step (values in the registry's order)."""

    symbol_id: str
    tf: str
    ts: int
    known_at: int
    feature_set: str
    values: tuple[float, ...]
    seq: int

    @property
    def subject(self) -> str:
        return features_subject(self.tf, self.symbol_id)

    def check(self) -> None:
        """Raise ContractError unless the update satisfies the schema's invariants."""
        for name in ("symbol_id", "tf"):
            value = getattr(self, name)
            if not value or _BAD_TOKEN_CHARS & set(value):
                raise ContractError(f"FeatureUpdate.{name} {value!r} cannot be a NATS subject token")
        if not self.feature_set:
            raise ContractError("FeatureUpdate.feature_set is empty")
        if not self.values:
            raise ContractError("FeatureUpdate.values is empty")
        if not all(math.isfinite(v) for v in self.values):
            raise ContractError(f"FeatureUpdate {self.symbol_id} seq {self.seq}: values must be finite")
        if self.seq < 0:
            raise ContractError(f"FeatureUpdate {self.symbol_id}: seq must be >= 0")
        if self.seq > MAX_SEQ:
            raise ContractError(f"FeatureUpdate {self.symbol_id}: seq {self.seq} > 2^53 - 1")
        if self.known_at < self.ts:
            raise ContractError(f"FeatureUpdate {self.symbol_id} seq {self.seq}: known_at < ts")


def features_subject(tf: str, symbol_id: str) -> str:
    """Subject of one symbol's FeatureUpdates."""
    return STREAMING.subject("features", tf=tf, symbol=symbol_id)


def signals_subject(tf: str, symbol_id: str) -> str:
    """Subject of one symbol's Signals."""
    return STREAMING.subject("signals", tf=tf, symbol=symbol_id)


def shadow_signals_subject(tf: str, symbol_id: str) -> str:
    """Subject of a challenger's shadow Signals for one symbol."""
    return STREAMING.subject("signals_shadow", tf=tf, symbol=symbol_id)


def deadletter_subject(subject: str) -> str:
    """Dead-letter subject of a refused message that arrived on ``subject``."""
    return STREAMING.subject("deadletter", subject=subject)


def encode(update: FeatureUpdate) -> bytes:
    """Serialise a checked update to the wire JSON."""
    update.check()
    return json.dumps(
        {
            "symbol_id": update.symbol_id,
            "tf": update.tf,
            "ts": int(update.ts),
            "known_at": int(update.known_at),
            "feature_set": update.feature_set,
            "values": [float(v) for v in update.values],
            "seq": int(update.seq),
        },
        separators=(",", ":"),
        allow_nan=False,
    ).encode()


def decode(payload: bytes) -> FeatureUpdate:
    """Parse and check wire JSON; any violation is a ContractError saying which."""
    try:
        raw = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ContractError(f"FeatureUpdate is not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise ContractError("FeatureUpdate must be a JSON object")
    if set(raw) != set(_FIELDS):
        raise ContractError(f"FeatureUpdate fields {sorted(raw)} != {sorted(_FIELDS)}")
    try:
        update = FeatureUpdate(
            symbol_id=str(raw["symbol_id"]),
            tf=str(raw["tf"]),
            ts=_int(raw["ts"], "ts"),
            known_at=_int(raw["known_at"], "known_at"),
            feature_set=str(raw["feature_set"]),
            values=tuple(float(v) for v in raw["values"]),
            seq=_int(raw["seq"], "seq"),
        )
    except (TypeError, ValueError) as exc:
        raise ContractError(f"FeatureUpdate has a mistyped field: {exc}") from exc
    update.check()
    return update


def _int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ContractError(f"FeatureUpdate.{name} must be an integer, got {value!r}")
    return value


CORE_STREAMS: tuple[str, ...] = tuple(STREAMING.stream_of(n) for n in ("features", "signals", "deadletter"))


async def ensure_streams(js, names: Sequence[str] = CORE_STREAMS) -> None:
    """Create the named JetStream streams if they do not exist (idempotent)."""
    from nats.js.errors import NotFoundError

    for name in names:
        try:
            await js.stream_info(name)
        except NotFoundError:
            await js.add_stream(name=name, subjects=STREAMS[name])


async def models_bucket(js):
    """Open (or create) the models KV bucket that holds champion pointers."""
    from nats.js.errors import BucketNotFoundError

    try:
        return await js.key_value(STREAMING.models_bucket)
    except BucketNotFoundError:
        return await js.create_key_value(bucket=STREAMING.models_bucket, history=STREAMING.models_history)


async def put_champion(js, pointer: dict) -> int:
    """Write a champion pointer (contracts/champion_pointer.schema.json); return the revision."""
    kv = await models_bucket(js)
    return await kv.put(STREAMING.champion_key(pointer["model_name"]), json.dumps(pointer).encode())


async def put_challenger(js, pointer: dict) -> int:
    """Write a challenger pointer (same schema as the champion's): the running scorer scores it in shadow."""
    kv = await models_bucket(js)
    return await kv.put(STREAMING.challenger_key(pointer["model_name"]), json.dumps(pointer).encode())


async def clear_challenger(js, model_name: str) -> None:
    """Delete ``model_name``'s challenger pointer: the running scorer stops shadow scoring."""
    kv = await models_bucket(js)
    await kv.delete(STREAMING.challenger_key(model_name))


class FeaturePublisher:
    """Publish FeatureUpdates over a connected nats-py client, with per-symbol seq numbers."""

    def __init__(self, nc, *, jetstream: bool = False) -> None:
        self._nc = nc
        self._js = nc.jetstream() if jetstream else None
        self._seq: dict[tuple[str, str], int] = {}

    def next_seq(self, tf: str, symbol_id: str) -> int:
        key = (tf, symbol_id)
        self._seq[key] = self._seq.get(key, -1) + 1
        return self._seq[key]

    async def publish(self, update: FeatureUpdate) -> None:
        """Publish one update (JetStream publish waits for the stream's ack)."""
        payload = encode(update)
        if self._js is not None:
            await self._js.publish(update.subject, payload)
        else:
            await self._nc.publish(update.subject, payload)

    async def publish_raw(self, subject: str, payload: bytes) -> None:
        """Publish bytes as they are (tests of the scorer's dead-letter path)."""
        await self._nc.publish(subject, payload)
