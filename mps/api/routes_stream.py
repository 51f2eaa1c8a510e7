"""``GET /signals/stream``: the scorer's signals as server-sent events, from NATS.

Each Signal published on the contract's ``signals`` subject (contracts/streaming.json) becomes one ``event: signal`` with the JSON
as data. Clients without realtime rights get each signal only once it is ``delay_s`` old (it is
held back in order, seed section 12). A comment line every 15 s keeps proxies from closing idle
streams.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from feature_store.contract import STREAMING
from mps.api.auth import Client, require
from mps.api.errors import responses

router = APIRouter()
KEEPALIVE_S = 15.0


def _subject(symbol_id: str | None, tf: str | None) -> str:
    return STREAMING.subject("signals", tf=tf or "*", symbol=symbol_id or "*")


@router.get(
    "/signals/stream",
    responses={**responses(503), 200: {"content": {"text/event-stream": {}}, "description": "SSE stream"}},
    response_class=StreamingResponse,
    tags=["signals"],
)
async def signals_stream(
    request: Request,
    client: Annotated[Client, Depends(require("read:signals"))],
    symbol_id: Annotated[str | None, Query(pattern=r"^[^.*> ]{1,64}$")] = None,
    tf: Annotated[str | None, Query(pattern=r"^\d+[smhd]$")] = None,
    max_events: Annotated[int | None, Query(ge=1, le=1_000_000)] = None,
) -> StreamingResponse:
    """Stream signals (all symbols, or one ``symbol_id``/``tf``) as server-sent events."""
    services = request.app.state.services
    nc = await services.nats()
    queue: asyncio.Queue = asyncio.Queue(maxsize=10_000)

    async def on_msg(msg) -> None:
        if not queue.full():
            queue.put_nowait(msg.data)

    sub = await nc.subscribe(_subject(symbol_id, tf), cb=on_msg)
    delay_ns = 0 if client.realtime else services.settings.delay_s * 1_000_000_000

    async def events():
        held: deque = deque()
        sent = 0
        try:
            yield ": connected\n\n"
            while max_events is None or sent < max_events:
                if await request.is_disconnected():
                    break
                try:
                    data = await asyncio.wait_for(queue.get(), timeout=1.0 if held else KEEPALIVE_S)
                    held.append(data)
                except TimeoutError:
                    if not held:
                        yield ": keepalive\n\n"
                now_ns = int(services.clock().timestamp() * 1e9)
                while held and (max_events is None or sent < max_events):
                    data = held[0]
                    try:
                        ts = int(json.loads(data).get("ts", 0))
                    except (ValueError, AttributeError):
                        ts = 0
                    if delay_ns and ts + delay_ns > now_ns:
                        break
                    held.popleft()
                    sent += 1
                    yield f"event: signal\ndata: {data.decode()}\n\n"
        finally:
            await sub.unsubscribe()

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
