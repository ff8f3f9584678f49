"""The ways to reach the server: a WebSocket, Server-Sent Events, and long polls. Each is
an async iterator of the server's frames that ends by raising :class:`Closed`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

import httpx
import websockets
from websockets.asyncio.client import ClientConnection, connect

from .frames import PROTOCOL
from .topic import Position


class Closed(Exception):
    """A link ended: a WebSocket close code, or the nearest one for the HTTP transports."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"{code} {reason}")
        self.code = code
        self.reason = reason


class Relink(Exception):
    """What a one-way link follows changed: open it again at once."""


def close_code_of(status: int) -> int:
    return {401: 4401, 403: 4403, 400: 4400, 404: 4400}.get(status, 1013)


def refusal(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message", response.reason_phrase))
    except (ValueError, AttributeError):
        return f"HTTP {response.status_code}"


class WebSocketLink:
    """The only link that carries the client's frames (publish, join)."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.url = url
        self.headers = headers
        self.ws: ClientConnection | None = None

    async def frames(self) -> AsyncIterator[dict[str, Any]]:
        """The server's frames, until the connection ends."""
        try:
            self.ws = await connect(
                self.url,
                additional_headers=self.headers,
                ping_interval=None,  # the protocol's own pings, which a client can watch
                max_size=None,
                open_timeout=10,
            )
        except websockets.exceptions.InvalidStatus as e:
            raise Closed(close_code_of(e.response.status_code), "refused") from e
        except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException) as e:
            raise Closed(1006, str(e)) from e
        ws = self.ws
        while True:
            try:
                text = await ws.recv()
            except websockets.exceptions.ConnectionClosed as e:
                code = e.rcvd.code if e.rcvd else 1006
                raise Closed(code, e.rcvd.reason if e.rcvd else "the connection dropped") from e
            if isinstance(text, str):
                try:
                    yield json.loads(text)
                except ValueError:
                    continue

    async def send(self, frame: dict[str, Any]) -> bool:
        if self.ws is None:
            return False
        try:
            await self.ws.send(json.dumps(frame))
            return True
        except websockets.exceptions.ConnectionClosed:
            return False

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()

    def abort(self) -> None:
        """Drops the connection now, without a close handshake: it is dead."""
        if self.ws is not None:
            self.ws.transport.abort()


async def _next_or_relink(items: AsyncIterator[Any], relink: asyncio.Event) -> Any:
    """The next item; raises Relink when `relink` is set first."""
    pending = asyncio.ensure_future(items.__anext__())
    waiter = asyncio.ensure_future(relink.wait())
    done, _ = await asyncio.wait({pending, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if pending in done:
        return pending.result()
    pending.cancel()
    raise Relink()


class SseLink:
    """``/sse``: its topics and positions are in its address."""

    def __init__(self, http: httpx.AsyncClient, address: Callable[[], str], headers: dict[str, str]) -> None:
        self.http = http
        self.address = address
        self.headers = headers
        self.relink = asyncio.Event()
        self.dead = False

    async def frames(self) -> AsyncIterator[dict[str, Any]]:
        self.relink.clear()
        headers = {**self.headers, "accept": "text/event-stream"}
        try:
            async with self.http.stream("GET", self.address(), headers=headers, timeout=httpx.Timeout(10, read=None)) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise Closed(close_code_of(response.status_code), refusal(response))
                lines = response.aiter_lines()
                data: list[str] = []
                while True:
                    try:
                        line = await _next_or_relink(lines, self.relink)
                    except StopAsyncIteration:
                        raise Closed(1006, "the stream ended") from None
                    except Relink:
                        if self.dead:
                            raise Closed(1006, "nothing heard") from None
                        raise
                    if line == "" and data:
                        text = "\n".join(data)
                        data = []
                        try:
                            yield json.loads(text)
                        except ValueError:
                            continue
                    elif line.startswith("data:"):
                        data.append(line[6:] if line[5:6] == " " else line[5:])
        except httpx.HTTPError as e:
            raise Closed(1006, str(e)) from e

    async def send(self, frame: dict[str, Any]) -> bool:
        return False

    async def close(self) -> None:
        self.relink.set()

    def abort(self) -> None:
        self.dead = True
        self.relink.set()


class PollLink:
    """Long polls of ``/api/v1/topics/{topic}/changes``, one loop per topic."""

    def __init__(self, http: httpx.AsyncClient, base: str, headers: dict[str, str], wait: int, positions: Callable[[], dict[str, Position | None]]) -> None:
        self.http = http
        self.base = base
        self.headers = headers
        self.wait = wait
        self.positions = positions
        self.relink = asyncio.Event()
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.loops: dict[str, asyncio.Task[None]] = {}

    async def _loop(self, topic: str) -> None:
        try:
            while topic in self.positions():
                at = self.positions().get(topic)
                url = f"{self.base}/api/v1/topics/{quote(topic, safe='')}/changes?wait={self.wait}"
                if at is not None:
                    url += f"&after={at.epoch}.{at.offset}"
                response = await self.http.get(url, headers=self.headers, timeout=self.wait + 15)
                if response.status_code == 403 or (response.status_code == 401 and "authorization" not in self.headers):
                    code = "forbidden" if response.status_code == 403 else "unauthenticated"
                    await self.queue.put({"type": "error", "code": code, "topics": [topic], "message": refusal(response)})
                    return
                if response.status_code != 200:
                    await self.queue.put(Closed(close_code_of(response.status_code), refusal(response)))
                    return
                answer = response.json()
                await self.queue.put({"type": "welcome", "protocol": PROTOCOL, "heartbeat_ms": 0, "idle_timeout_ms": 0})
                for frame in answer["frames"]:
                    await self.queue.put(frame)
                # The answer's position is where the frames led: the topic must be there now.
                await self.queue.put({"type": "resumed", "topic": topic, "epoch": answer["epoch"], "offset": answer["offset"], "poll": True})
                # The next request asks from the position these frames lead to: wait until
                # the client has applied them.
                await self.queue.join()
        except httpx.HTTPError as e:
            await self.queue.put(Closed(1006, f"long poll failed: {e}"))
        finally:
            self.loops.pop(topic, None)

    async def frames(self) -> AsyncIterator[dict[str, Any]]:
        welcomed = False
        try:
            while True:
                for topic in self.positions():
                    if topic not in self.loops:
                        self.loops[topic] = asyncio.create_task(self._loop(topic))
                self.relink.clear()
                getter = asyncio.ensure_future(self.queue.get())
                waiter = asyncio.ensure_future(self.relink.wait())
                done, _ = await asyncio.wait({getter, waiter}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                if getter not in done:
                    getter.cancel()
                    continue
                item = getter.result()
                try:
                    if isinstance(item, Closed):
                        raise item
                    if item.get("type") == "welcome":
                        if welcomed:
                            continue
                        welcomed = True
                    if item.get("poll") and self.positions().get(item["topic"]) is None:
                        continue
                    yield item
                finally:
                    self.queue.task_done()
        finally:
            for task in list(self.loops.values()):
                task.cancel()

    async def send(self, frame: dict[str, Any]) -> bool:
        return False

    async def close(self) -> None:
        for task in list(self.loops.values()):
            task.cancel()

    def abort(self) -> None:
        self.relink.set()
