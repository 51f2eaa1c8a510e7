"""Bounded streams: each JetStream stream is trimmed below what its readers have consumed.

After ``kill -9`` nats-server rebuilds every stream written since its last ``index.db`` snapshot
(taken every ~2 minutes) from all of its blocks, so its restart time grows with the streams' size
(3M messages: 9-90 s). A stream that holds only what is not yet consumed restarts fast.

The rule is the Rust side's too (``serving-rs/src/retention.rs``): the floor is the lowest
``ack_floor`` of the stream's durable consumers (a reader that needs what it has not read yet holds
a durable) and, for MARKET_DATA, the lowest position of any featurizer checkpoint
(``checkpoint_floors``); the purge keeps every sequence above the floor. Ephemeral consumers do not
count: a killed process's ordered consumer outlives it by its inactivity threshold and would hold
the stream back meanwhile, and a featurizer's own is covered by its checkpoint. A stream that no
durable reads and no checkpoint covers is left whole.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from feature_store.contract import STREAMING

log = logging.getLogger(__name__)


def header_position(headers: Mapping | None) -> int | None:
    """The MARKET_DATA sequence an object's position header holds, or None when it has no readable one.

    Object headers are stored as Go and Rust write them (``{"Mps-Md-Seq": ["123"]}``); a bare
    string is read too.
    """
    value = (headers or {}).get(STREAMING.position_header)
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if not isinstance(value, str) or not (value.isascii() and value.isdigit()):
        return None
    return int(value)


async def checkpoint_floors(js) -> list[int] | None:
    """The positions of every featurizer checkpoint ([] when there is none).

    None when one has no readable position or the bucket cannot be read: that featurizer's replay
    start is unknown, so MARKET_DATA must not be trimmed.
    """
    from nats.js.errors import NotFoundError

    try:
        store = await js.object_store(STREAMING.featurizer_state_bucket)
        infos = await store.list(ignore_deletes=True)
    except NotFoundError:  # no bucket, or (nats-py) a bucket without live objects
        return []
    except Exception as exc:  # NATS down: no trim this time
        log.warning("reading the featurizer checkpoints failed (%s); MARKET_DATA is not trimmed", exc)
        return None
    floors = []
    for info in infos:
        position = header_position(info.headers)
        if position is None:
            header = STREAMING.position_header
            log.warning("featurizer checkpoint %s has no %s header; MARKET_DATA is not trimmed", info.name, header)
            return None
        floors.append(position)
    return floors


async def trim_consumed(js, stream: str, extra_floors: Iterable[int] = ()) -> int:
    """Purge ``stream`` up to the lowest sequence every durable consumer (and ``extra_floors``) has consumed.

    Returns the messages removed (0 when no durable reads the stream or nothing is below the floor).
    Never raises: a failure (NATS down) is logged and the next call tries again.
    """
    try:
        consumers = await _consumers(js, stream)
        durables = [c for c in consumers if c.config.durable_name]
        floors = [*extra_floors, *(c.ack_floor.stream_seq if c.ack_floor else 0 for c in durables)]
        if not floors:
            return 0
        floor = min(floors)
        before = (await js.stream_info(stream)).state
        if floor + 1 <= before.first_seq:
            return 0
        await js.purge_stream(stream, seq=floor + 1)
        after = (await js.stream_info(stream)).state
    except Exception as exc:
        log.warning("trimming %s skipped: %s", stream, exc or type(exc).__name__)
        return 0
    # nats-py's purge_stream drops the server's count; messages published meanwhile are not removed ones
    return before.messages + (after.last_seq - before.last_seq) - after.messages


async def _consumers(js, stream: str) -> list:
    """Every consumer of ``stream`` (the server lists them a page of 256 at a time)."""
    out: list = []
    while page := await js.consumers_info(stream, offset=len(out)):
        out += page
    return out
