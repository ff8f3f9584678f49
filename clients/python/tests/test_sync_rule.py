"""The sync rule and the position store, without a server (the conformance suite runs the
client against the real one)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from pulseboard import FilePositions, Position
from pulseboard.topic import Next, TopicState


def event(offset: int, epoch: int = 7, payload: Any = None, kind: str = "UPDATED") -> dict[str, Any]:
    return {"type": "event", "topic": "t", "epoch": epoch, "offset": offset, "event": kind, "entity_id": "a", "payload": payload if payload is not None else offset, "ts": ""}


def snapshot(offset: int, epoch: int = 7, state: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": "snapshot", "topic": "t", "epoch": epoch, "offset": offset, "state": state or {}}


def reader(topic: TopicState) -> asyncio.Queue[Any]:
    queue: asyncio.Queue[Any] = asyncio.Queue(100)
    topic.readers.append(queue)
    return queue


def test_events_apply_in_order_and_duplicates_are_dropped() -> None:
    topic = TopicState("t")
    changes = reader(topic)
    assert topic.receive(event(1)) is Next.NOTHING, "before a snapshot: ignored"
    topic.receive(snapshot(10, state={"a": 1}))
    assert topic.receive(event(11, payload=2)) is Next.NOTHING
    assert topic.receive(event(11, payload=99)) is Next.NOTHING
    assert topic.receive(event(9, payload=98)) is Next.NOTHING
    assert topic.state == {"a": 2}
    assert topic.position == Position(7, 11)
    kinds = [changes.get_nowait().kind for _ in range(changes.qsize())]
    assert kinds == ["snapshot", "event"]


def test_a_gap_or_another_epoch_asks_for_a_snapshot() -> None:
    topic = TopicState("t")
    topic.receive(snapshot(10))
    assert topic.receive(event(12)) is Next.RESYNC
    assert topic.receive(event(11, epoch=8)) is Next.RESYNC
    assert topic.receive({"type": "coalesced", "topic": "t", "epoch": 7, "from": 5, "offset": 20, "state": {}, "deleted": []}) is Next.RESYNC


def test_a_snapshot_replacing_a_held_position_is_a_discontinuity() -> None:
    topic = TopicState("t", position=Position(7, 3), held=True)
    changes = reader(topic)
    topic.receive(event(4))
    topic.receive({"type": "resumed", "topic": "t", "epoch": 7, "offset": 4, "replayed": 1})
    assert topic.ready and topic.state == {"a": 4}
    topic.receive(snapshot(0, epoch=9))
    *_, last = [changes.get_nowait() for _ in range(changes.qsize())]
    assert last.kind == "snapshot" and last.discontinuity


def test_deletes_and_coalesced_frames() -> None:
    topic = TopicState("t")
    topic.receive(snapshot(1, state={"a": 1, "b": 2}))
    topic.receive(event(2, kind="DELETED", payload=None))
    assert topic.state == {"b": 2}
    topic.receive({"type": "coalesced", "topic": "t", "epoch": 7, "from": 2, "offset": 9, "state": {"c": 3}, "deleted": ["b"]})
    assert topic.state == {"c": 3} and topic.position == Position(7, 9)


def test_a_reader_far_behind_gets_one_coalesced_change() -> None:
    topic = TopicState("t")
    queue: asyncio.Queue[Any] = asyncio.Queue(3)
    topic.readers.append(queue)
    topic.receive(snapshot(0))
    for offset in range(1, 10):
        topic.receive(event(offset))
    changes = [queue.get_nowait() for _ in range(queue.qsize())]
    assert changes[-1].position == Position(7, 9)
    assert changes[-1].state == {"a": 9}
    assert any(c.kind == "coalesced" for c in changes)


def test_positions_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "positions.json"
    FilePositions(path).save("t", Position(7, 41))
    again = FilePositions(path)
    assert again.get("t") == Position(7, 41)
    assert again.get("other") is None
