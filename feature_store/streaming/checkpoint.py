"""Restart checkpoints of the Python streaming featurizer in the ``featurizer_state`` object store.

One object per feature set and timeframe (``STREAMING.featurizer_state_key("python", ...)``) holds a
pickle (protocol 5) of ``{"format", "feature_set", "version", "md_seq", "resume", "state"}``: the
featurizer's evolving state, the MARKET_DATA sequence of the last message that state includes, and
the last second published per symbol. The object's ``Mps-Md-Seq`` header repeats the sequence, so
whoever trims MARKET_DATA (``feature_store.retention``, the Rust side) reads every checkpoint's
position without unpickling it.
"""

from __future__ import annotations

import logging
import pickle

from feature_store.contract import STREAMING
from feature_store.registry import FeatureSet

FORMAT = 1  # the layout of the pickled dict
log = logging.getLogger(__name__)


def checkpoint_key(feature_set: FeatureSet) -> str:
    """The object name of the Python featurizer's checkpoint for ``feature_set``."""
    return STREAMING.featurizer_state_key("python", feature_set.name, feature_set.tf)


def dumps(feature_set: FeatureSet, md_seq: int, resume: dict[str, int], state: dict) -> bytes:
    """The body of a checkpoint object (``state``: ``TickFeaturizer.state()``, copied as it is now)."""
    saved = {
        "format": FORMAT,
        "feature_set": feature_set.name,
        "version": feature_set.version,
        "md_seq": md_seq,
        "resume": resume,
        "state": state,
    }
    return pickle.dumps(saved, protocol=5)


async def load(js, feature_set: FeatureSet) -> dict | None:
    """The stored checkpoint of ``feature_set``, or None when there is none it can continue from.

    A checkpoint of another format or feature set version (its state has other windows) or one
    that does not unpickle is logged and not used.
    """
    from nats.js.errors import NotFoundError

    key = checkpoint_key(feature_set)
    try:
        store = await js.object_store(STREAMING.featurizer_state_bucket)
        obj = await store.get(key)
    except NotFoundError:  # no bucket, or no object: the first run
        return None
    try:
        saved = pickle.loads(obj.data or b"")
        found = (saved["format"], saved["feature_set"], saved["version"])
    except Exception as exc:  # truncated, or written by other code
        log.warning("featurizer checkpoint %s is unreadable (%s); not used", key, exc)
        return None
    if found != (FORMAT, feature_set.name, feature_set.version):
        log.info("featurizer checkpoint %s is of format, set, version %s; not used", key, found)
        return None
    return saved


async def store(js, feature_set: FeatureSet, md_seq: int, body: bytes) -> None:
    """Write ``body`` (``dumps(...)``) over ``feature_set``'s object, creating the bucket if missing."""
    from nats.js.api import ObjectMeta
    from nats.js.errors import BucketNotFoundError

    key = checkpoint_key(feature_set)
    try:
        objects = await js.object_store(STREAMING.featurizer_state_bucket)
    except BucketNotFoundError:
        objects = await js.create_object_store(STREAMING.featurizer_state_bucket)
    # Go's header layout (a list of values per name): async-nats fails to decode a bare string
    meta = ObjectMeta(name=key, headers={STREAMING.position_header: [str(md_seq)]})
    await objects.put(key, body, meta=meta)
