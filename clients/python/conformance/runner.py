"""The Python client's runner for the conformance suite (clients/conformance): commands in
as JSON lines on stdin, what the client does out as JSON lines on stdout."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from pulseboard import Client, Publisher, PulseboardError


def say(obs: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obs) + "\n")
    sys.stdout.flush()


class Runner:
    def __init__(self) -> None:
        self.client: Client | None = None
        self.token: asyncio.Future[str | None] | None = None
        self.last_state = ""
        self.tasks: set[asyncio.Task[None]] = set()

    def spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def start(self, url: str, transports: list[str] | None = None, get_token: bool = False, token: str | None = None, **_: Any) -> None:
        async def ask() -> str | None:
            self.token = asyncio.get_running_loop().create_future()
            say({"obs": "token_needed"})
            return await self.token

        self.client = Client(
            url,
            token=token,
            get_token=ask if get_token else None,
            transports=tuple(transports or ("websocket", "sse", "poll")),  # type: ignore[arg-type]
            backoff=(0.1, 1.0),
            person="conformance-runner",
        )

        def changed(connection: Any) -> None:
            key = f"{connection.state}/{connection.transport}"
            if key != self.last_state:
                self.last_state = key
                error = connection.error.code if connection.error else None
                say({"obs": "connection", "state": connection.state, "transport": connection.transport, "error": error})

        self.client.on_connection = changed
        await self.client.__aenter__()

    async def token_cmd(self, token: str | None = None, **_: Any) -> None:
        if self.token and not self.token.done():
            self.token.set_result(token)

    async def follow(self, topic: str, resume: Any = None, **_: Any) -> None:
        assert self.client
        subscription = self.client.topic(topic)

        async def read() -> None:
            try:
                async for change in subscription:
                    obs: dict[str, Any] = {"obs": "change", "topic": topic, "kind": change.kind, "epoch": change.position.epoch, "offset": change.position.offset, "state": change.state}
                    if change.kind == "snapshot":
                        obs["discontinuity"] = change.discontinuity
                    say(obs)
            except PulseboardError as e:
                say({"obs": "ended", "topic": topic, "code": e.code})

        self.spawn(read())

    async def join(self, board: str, **_: Any) -> None:
        assert self.client
        presence = self.client.presence(board)

        async def read() -> None:
            first = None
            async for frame in presence:
                me = presence.me
                if not me or not frame.get("count"):
                    continue
                first = first or me
                listed = any(me in person["tabs"] for person in frame.get("people", []))
                say({"obs": "presence", "board": board, "count": frame["count"], "me_listed": listed, "new_connection": me != first})

        self.spawn(read())

    async def publish(self, topic: str, ops: list[Any] | None = None, big_kib: int | None = None, **_: Any) -> None:
        assert self.client
        sent = [{"op": "set", "entity_id": "big", "payload": "x" * (big_kib * 1024)}] if big_kib else ops or []

        async def go() -> None:
            try:
                ack = await self.client.publish(topic, sent)  # type: ignore[union-attr]
                say({"obs": "published", "offset": ack["offset"]})
            except PulseboardError as e:
                say({"obs": "publish_failed", "code": e.code})

        self.spawn(go())

    async def http_publish(self, url: str, token: str, topic: str, ops: list[Any], **_: Any) -> None:
        async def go() -> None:
            async with Publisher(url, token=token, backoff=0.05) as publisher:
                try:
                    published = await publisher.publish(topic, ops)
                    say({"obs": "published", "offset": published["offset"]})
                except PulseboardError as e:
                    say({"obs": "publish_failed", "code": e.code})

        self.spawn(go())


async def main() -> None:
    runner = Runner()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        command = json.loads(line)
        name = command.pop("cmd")
        try:
            await getattr(runner, "token_cmd" if name == "token" else name)(**command)
        except Exception as e:  # a runner bug, reported rather than hidden
            say({"obs": "runner_error", "message": repr(e)})


if __name__ == "__main__":
    asyncio.run(main())
