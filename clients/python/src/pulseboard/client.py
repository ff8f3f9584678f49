"""The connection: the topics and boards followed through it, kept gapless across
reconnects, transports and server restarts."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import httpx

from .errors import PulseboardError
from .frames import PROTOCOL
from .positions import PositionStore
from .topic import _END, Change, Next, Position, TopicState
from .transports import Closed, PollLink, Relink, SseLink, WebSocketLink

CLIENT = "pulseboard-py/0.1.0"
"""This library's name and version, sent to the server as ``client=``."""

Transport = Literal["websocket", "sse", "poll"]
TokenSource = Callable[[], Awaitable[str | None]]

_STOPPING = {1008: "policy", 1009: "too_large", 4400: "invalid_request"}


@dataclass(frozen=True)
class Connection:
    """The connection's state: ``idle`` (nothing followed), ``connecting``, ``open``,
    ``reconnecting``, or ``stopped`` (closed, or ``error`` says why)."""

    state: Literal["idle", "connecting", "open", "reconnecting", "stopped"]
    transport: Transport
    attempt: int
    error: PulseboardError | None
    stale: str | None
    server: str | None


class Subscription:
    """A followed topic: iterate it for its changes, in order (``async for change in …``).

    ``state`` and ``position`` are the topic's as the client holds them now. With a
    position store, the position of each change is saved once the next one is asked for,
    so a worker that restarts resumes after the last change it finished (at least once).
    """

    def __init__(self, client: Client, topic: TopicState, positions: PositionStore | None, max_queue: int) -> None:
        self._client = client
        self._topic = topic
        self._positions = positions
        self._queue: asyncio.Queue[Any] = asyncio.Queue(max_queue)
        self._last: Change | None = None
        self._taken = 0
        topic.readers.append(self._queue)

    @property
    def name(self) -> str:
        return self._topic.name

    @property
    def state(self) -> dict[str, Any]:
        return dict(self._topic.state)

    @property
    def position(self) -> Position | None:
        return self._topic.position

    @property
    def stale(self) -> str | None:
        """Why the topic is not updating, while it is not."""
        return self._topic.stale

    def __aiter__(self) -> AsyncIterator[Change]:
        return self

    async def __anext__(self) -> Change:
        if self._last is not None and self._positions is not None:
            self._positions.save(self.name, self._last.position)
        self._taken += 1
        if self._taken % 64 == 0:
            # A queue with changes in it hands them out without suspending: a reader that
            # never awaits anything else would starve every other task (the connection's own
            # reads among them) until the backlog is gone.
            await asyncio.sleep(0)
        item = await self._queue.get()
        if item is _END:
            if self._topic.ended is not None:
                raise self._topic.ended
            raise StopAsyncIteration
        self._last = item
        return item  # type: ignore[no-any-return]

    async def close(self) -> None:
        """Stops following the topic (when no other subscription holds it)."""
        await self._client._release(self._topic, self._queue)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()


class Presence:
    """A joined board: iterate it for each ``presence`` frame (``count``, ``people``)."""

    def __init__(self, client: Client, board: str) -> None:
        self._client = client
        self.board = board
        self.latest: dict[str, Any] | None = None
        self.me: str | None = None
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self

    async def __anext__(self) -> dict[str, Any]:
        frame = await self._queue.get()
        if frame is None:
            raise StopAsyncIteration
        return frame

    async def close(self) -> None:
        await self._client._leave(self)


class Client:
    """A connection to one Pulseboard server.

    ``async with Client(url, token=…) as client:`` then ``async for change in
    client.topic("metric:kpis")``. It connects once something is followed, and reconnects
    for ever with full-jitter backoff, resuming every topic from its position: after three
    failed WebSocket connections in a row it falls back to Server-Sent Events, then to long
    polling (topics only), trying WebSocket again every ``upgrade_every`` seconds.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        get_token: TokenSource | None = None,
        transports: Sequence[Transport] = ("websocket", "sse", "poll"),
        fallback_after: int = 3,
        upgrade_every: float = 60.0,
        backoff: tuple[float, float] = (1.0, 30.0),
        poll_wait: int = 25,
        person: str | None = None,
        request_timeout: float = 10.0,
    ) -> None:
        self.url = url.rstrip("/")
        self._token = token
        self._token_known = token is not None or get_token is None
        self._get_token = get_token
        self._token_asked: asyncio.Task[str | None] | None = None
        self._transports = list(transports)
        self._fallback_after = fallback_after
        self._upgrade_every = upgrade_every
        self._backoff = backoff
        self._poll_wait = poll_wait
        self._person = person
        self._request_timeout = request_timeout
        self._topics: dict[str, TopicState] = {}
        self._boards: dict[str, list[Presence]] = {}
        self._pending: dict[str, tuple[asyncio.Future[dict[str, Any]], dict[str, Any], bool]] = {}
        self._next_ref = 0
        self._ti = 0
        self._failures = 0
        self._attempt = 0
        self._probing: int | None = None
        self._link: WebSocketLink | SseLink | PollLink | None = None
        self._opened = False
        self._state: Literal["idle", "connecting", "open", "reconnecting", "stopped"] = "idle"
        self._error: PulseboardError | None = None
        self._stopped: PulseboardError | None = None
        self._closed = False
        self._stale: str | None = None
        self._server: str | None = None
        self._me: str | None = None
        self._heard = 0.0
        self._restart_in: float | None = None
        self._timed_out = False
        self._wanted = asyncio.Event()
        self._wake = asyncio.Event()
        self._http = httpx.AsyncClient()
        self._task: asyncio.Task[None] | None = None
        self._pinger: asyncio.Task[None] | None = None
        self._upgrader: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Task[bool]] = set()
        self.on_connection: Callable[[Connection], None] | None = None
        """Called with the connection's state whenever it changes."""

    # ---- the public side ----------------------------------------------------------------

    @property
    def connection(self) -> Connection:
        return Connection(self._state, self._transports[self._ti], self._attempt, self._stopped or self._error, self._stale, self._server)

    async def __aenter__(self) -> Client:
        self._start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    def topic(self, name: str, *, resume_from: Position | None = None, positions: PositionStore | None = None, max_queue: int = 10_000) -> Subscription:
        """Follows a topic: a snapshot, then every change, in order. ``resume_from`` (or the
        position ``positions`` holds for it) gets only the changes after it, or a snapshot
        with ``discontinuity`` when they are gone. A reader more than ``max_queue`` changes
        behind gets one ``coalesced`` change with the latest state instead."""
        self._start()
        topic = self._topics.get(name)
        if topic is None:
            start = resume_from or (positions.get(name) if positions else None)
            topic = TopicState(name, position=start, held=start is not None)
            self._topics[name] = topic
            self._follow([name])
        return Subscription(self, topic, positions, max_queue)

    def presence(self, board: str) -> Presence:
        """Joins a board (over WebSocket) to hear who is on it."""
        self._start()
        presence = Presence(self, board)
        holders = self._boards.setdefault(board, [])
        holders.append(presence)
        if len(holders) == 1:
            self._send_soon(self._join_frame(board))
            self._wanted.set()
        return presence

    async def publish(self, topic: str, ops: list[dict[str, Any]], *, user_id: str | None = None, trace_id: str | None = None) -> dict[str, Any]:
        """Applies ops to a topic, whole or not at all; returns the ``ack``. Over the HTTP
        fallbacks it posts to the API with an Idempotency-Key. Raises
        :class:`PulseboardError` (``op_refused``, ``forbidden``, ``unknown_outcome``, …)."""
        frame: dict[str, Any] = {"type": "publish", "topic": topic, "ops": ops}
        if user_id:
            frame["user_id"] = user_id
        if trace_id:
            frame["trace_id"] = trace_id
        return await self._request(frame)

    async def close(self) -> None:
        """Stops for good: closes the connection and ends every subscription."""
        self._closed = True
        self._set_state("stopped")
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        for topic in self._topics.values():
            for reader in topic.readers:
                reader.put_nowait(_END)
        await self._http.aclose()

    # ---- holds ----------------------------------------------------------------------------

    async def _release(self, topic: TopicState, queue: asyncio.Queue[Any]) -> None:
        if queue in topic.readers:
            topic.readers.remove(queue)
        queue.put_nowait(_END)
        if not topic.readers and self._topics.get(topic.name) is topic:
            del self._topics[topic.name]
            await self._send({"type": "unsubscribe", "topics": [topic.name]})
            self._relink()

    async def _leave(self, presence: Presence) -> None:
        holders = self._boards.get(presence.board, [])
        if presence in holders:
            holders.remove(presence)
        presence._queue.put_nowait(None)
        if not holders:
            self._boards.pop(presence.board, None)
            await self._send({"type": "leave", "board": presence.board})

    # ---- the connection -----------------------------------------------------------------

    def _start(self) -> None:
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def _set_state(self, state: Literal["idle", "connecting", "open", "reconnecting", "stopped"]) -> None:
        self._state = state
        if self.on_connection:
            self.on_connection(self.connection)

    def _follow(self, names: list[str]) -> None:
        topics = []
        for name in names:
            position = self._topics[name].position
            topics.append({"topic": name, "resume": position.as_json()} if position else {"topic": name})
        if not self._send_soon({"type": "subscribe", "topics": topics}):
            self._relink()
        self._wanted.set()

    def _relink(self) -> None:
        link = self._link
        if isinstance(link, (SseLink, PollLink)):
            link.relink.set()

    def _join_frame(self, board: str) -> dict[str, Any]:
        frame = {"type": "join", "board": board}
        if self._person:
            frame["person"] = self._person
        return frame

    def _send_soon(self, frame: dict[str, Any]) -> bool:
        """Sends a frame if a WebSocket is open; false otherwise (the welcome sends all)."""
        if not (self._opened and isinstance(self._link, WebSocketLink)):
            return False
        # Held until done: the event loop keeps only a weak reference to a task.
        task = asyncio.get_running_loop().create_task(self._link.send(frame))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)
        return True

    async def _send(self, frame: dict[str, Any]) -> bool:
        return self._opened and self._link is not None and await self._link.send(frame)

    async def _ask_token(self) -> str | None:
        if self._token_known or self._get_token is None:
            return self._token
        if self._token_asked is None:
            self._token_asked = asyncio.ensure_future(self._get_token())
        try:
            token = await self._token_asked
        except Exception as e:
            raise PulseboardError("unauthenticated", f"get_token failed: {e}") from e
        finally:
            self._token_asked = None
        self._token, self._token_known = token, True
        return token

    def _make_link(self, transport: Transport, token: str | None) -> WebSocketLink | SseLink | PollLink:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        client = f"client={quote(CLIENT, safe='')}"
        if transport == "websocket":
            ws = "ws" + self.url[4:] if self.url.startswith("http") else self.url
            return WebSocketLink(f"{ws}/ws?{client}", headers)
        if transport == "sse":

            def address() -> str:
                topics = ",".join(self._topics)
                held = [f"{t}={s.position.epoch}.{s.position.offset}" for t, s in self._topics.items() if s.position]
                return f"{self.url}/sse?{client}&topics={quote(topics, safe='')}&from={quote(','.join(held), safe='')}"

            return SseLink(self._http, address, headers)
        return PollLink(self._http, self.url, headers, self._poll_wait, lambda: {t: s.position for t, s in self._topics.items()})

    async def _run(self) -> None:
        while not self._closed and self._stopped is None:
            if not (self._topics or self._boards or self._pending):
                self._set_state("idle")
                self._wanted.clear()
                await self._wanted.wait()
                continue
            transport = self._transports[self._ti]
            self._opened = False
            self._timed_out = False
            self._set_state("connecting")
            code, reason = 1006, ""
            try:
                token = await self._ask_token()
                self._link = self._make_link(transport, token)
                self._heard = time.monotonic()
                async for frame in self._link.frames():
                    await self._frame(frame)
            except Closed as closed:
                code, reason = closed.code, closed.reason
            except Relink:
                continue
            except PulseboardError as e:
                if e.code == "protocol":
                    self._stop(e)
                    break
                self._error = e
            finally:
                await self._drop()
            opened, self._opened = self._opened, False
            if self._timed_out:
                code, reason = 1006, "nothing heard within the idle timeout"
            await self._ended(code, reason, opened)

    async def _drop(self) -> None:
        for task in (self._pinger, self._upgrader):
            if task:
                task.cancel()
        self._pinger = self._upgrader = None
        link, self._link = self._link, None
        if link is not None:
            try:
                await asyncio.wait_for(link.close(), 1)
            except Exception:
                pass
        for ref, (future, frame, sent) in list(self._pending.items()):
            if sent:
                del self._pending[ref]
                if not future.done():
                    future.set_exception(PulseboardError("unknown_outcome", "the connection dropped before the answer: the write may or may not have been applied"))

    async def _ended(self, code: int, reason: str, opened: bool) -> None:
        name = {1008: "policy", 1009: "too_large", 4401: "unauthenticated", 4403: "forbidden"}.get(code, "network")
        error = PulseboardError(name, reason or f"closed with {code}", close_code=code)
        self._error = error
        if code in _STOPPING:
            return self._stop(error)
        if code == 4401:
            if self._get_token is None:
                return self._stop(error)
            self._token_known = False
        if code == 4403:
            for topic in self._topics.values():
                topic.end(error)
            for holders in self._boards.values():
                for presence in holders:
                    presence._queue.put_nowait(None)
            self._topics.clear()
            self._boards.clear()
            return
        if not opened and self._probing is not None:
            self._ti, self._probing = self._probing, None
            return await self._sleep(0)
        if not opened:
            self._failures += 1
            if self._failures >= self._fallback_after and self._ti < len(self._transports) - 1 and not self._boards:
                self._ti += 1
                self._failures = 0
        delay = self._restart_in
        self._restart_in = None
        if code == 1012 and delay is None:
            delay = random.random()
        await self._sleep(delay)

    async def _sleep(self, delay: float | None) -> None:
        first, cap = self._backoff
        wait = delay if delay is not None else random.random() * min(cap, first * 2**self._attempt)
        self._attempt += 1
        self._set_state("reconnecting")
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), wait)
        except asyncio.TimeoutError:
            pass

    def _stop(self, error: PulseboardError) -> None:
        self._stopped = error
        for ref, (future, _, _) in list(self._pending.items()):
            del self._pending[ref]
            if not future.done():
                future.set_exception(error)
        self._set_state("stopped")

    async def _watch(self, heartbeat: float, idle: float) -> None:
        """Pings when quiet; drops a connection silent for the idle timeout."""
        while True:
            silent = time.monotonic() - self._heard
            if silent >= idle:
                self._timed_out = True
                if self._link:
                    self._link.abort()
                return
            await asyncio.sleep(min(heartbeat, idle - silent))
            if time.monotonic() - self._heard < idle:
                await self._send({"type": "ping"})

    async def _upgrade_later(self) -> None:
        await asyncio.sleep(self._upgrade_every)
        self._probing, self._ti = self._ti, 0
        if self._link:
            self._link.abort()

    async def _frame(self, frame: dict[str, Any]) -> None:
        self._heard = time.monotonic()
        kind = frame.get("type")
        topic = self._topics.get(frame["topic"]) if isinstance(frame.get("topic"), str) else None
        if kind == "welcome":
            await self._welcome(frame)
        elif kind in ("snapshot", "event", "coalesced", "resumed"):
            if topic is not None and topic.receive(frame) is Next.RESYNC:
                topic.forget()
                if not await self._send({"type": "subscribe", "topics": [{"topic": topic.name}]}):
                    self._relink()
        elif kind in ("stale", "fresh"):
            reason = frame.get("reason") if kind == "stale" else None
            if frame.get("topic"):
                if topic is not None:
                    topic.stale = reason
            else:
                self._stale = reason
        elif kind == "presence":
            for presence in self._boards.get(frame["board"], []):
                presence.latest, presence.me = frame, self._me
                presence._queue.put_nowait(frame)
        elif kind == "restarting":
            self._restart_in = frame["reconnect_in_ms"] / 1000
        elif kind in ("ack", "error"):
            self._answer(frame)

    async def _welcome(self, frame: dict[str, Any]) -> None:
        if frame.get("protocol") != PROTOCOL:
            raise PulseboardError("protocol", f"the server speaks protocol {frame.get('protocol', '2 or older')}; this client ({CLIENT}) speaks {PROTOCOL}")
        if self._opened:
            return
        self._opened = True
        self._probing = None
        self._failures = self._attempt = 0
        self._error = None
        self._me = frame.get("connection")
        self._server = frame.get("server", self._server)
        self._stale = None
        for topic in self._topics.values():
            topic.stale = None
        self._set_state("open")
        names = list(self._topics)
        for i in range(0, len(names), 500):
            self._follow(names[i : i + 500])
        for board in self._boards:
            await self._send(self._join_frame(board))
        for ref, (_, request, sent) in list(self._pending.items()):
            if not sent:
                await self._dispatch(ref, request)
        heartbeat, idle = frame.get("heartbeat_ms", 0) / 1000, frame.get("idle_timeout_ms", 0) / 1000
        if idle:
            self._pinger = asyncio.create_task(self._watch(heartbeat, idle))
        if self._ti > 0 and self._transports[0] == "websocket":
            self._upgrader = asyncio.create_task(self._upgrade_later())

    # ---- requests -------------------------------------------------------------------------

    async def _request(self, frame: dict[str, Any]) -> dict[str, Any]:
        if self._closed or self._stopped:
            raise self._stopped or PulseboardError("closed", "the client is closed")
        self._start()
        self._next_ref += 1
        ref = f"r{self._next_ref}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[ref] = (future, frame, False)
        self._wanted.set()
        if self._opened:
            await self._dispatch(ref, frame)
        try:
            return await asyncio.wait_for(asyncio.shield(future), self._request_timeout)
        except asyncio.TimeoutError:
            entry = self._pending.pop(ref, None)
            sent = entry is not None and entry[2]
            raise PulseboardError("unknown_outcome" if sent else "timeout", "no answer in time") from None

    async def _dispatch(self, ref: str, frame: dict[str, Any]) -> None:
        future = self._pending[ref][0]
        if isinstance(self._link, WebSocketLink):
            self._pending[ref] = (future, frame, await self._send({**frame, "ref": ref}))
            return
        # The HTTP fallbacks carry no frames: post to the API, with an Idempotency-Key so
        # that a retry after a lost answer applies once.
        self._pending[ref] = (future, frame, True)
        headers = {"idempotency-key": f"{CLIENT}-{uuid.uuid4()}"}
        if self._token:
            headers["authorization"] = f"Bearer {self._token}"
        body = {k: v for k, v in frame.items() if k in ("ops", "user_id", "trace_id")}
        try:
            response = await self._http.post(f"{self.url}/api/v1/topics/{quote(frame['topic'], safe='')}", json=body, headers=headers)
            answer = response.json()
            self._answer({**answer, "type": "ack", "ref": ref} if response.is_success else {"type": "error", "ref": ref, **answer, "status": response.status_code})
        except (httpx.HTTPError, ValueError):
            self._answer({"type": "error", "ref": ref, "code": "unknown_outcome", "message": "the request failed: the write may or may not have been applied"})

    def _answer(self, frame: dict[str, Any]) -> None:
        entry = self._pending.pop(frame.get("ref") or "", None)
        if entry is not None:
            future = entry[0]
            if future.done():
                return
            if frame["type"] == "ack":
                future.set_result(frame)
            else:
                future.set_exception(PulseboardError(frame.get("code", "http"), frame.get("message", ""), status=frame.get("status")))
            return
        if frame["type"] != "error":
            return
        error = PulseboardError(frame.get("code", "error"), frame.get("message", ""))
        for name in frame.get("topics", []):
            topic = self._topics.pop(name, None)
            if topic is not None:
                topic.end(error)
        if frame.get("board"):
            for presence in self._boards.pop(frame["board"], []):
                presence._queue.put_nowait(None)
        self._error = error
