"""One followed topic, held to the sync rule, and the changes its readers are given."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal

from .errors import PulseboardError


@dataclass(frozen=True)
class Position:
    """A point in a topic's history: every event up to ``offset`` of ``epoch`` is applied."""

    epoch: int
    offset: int

    def as_json(self) -> dict[str, int]:
        return {"epoch": self.epoch, "offset": self.offset}


@dataclass(frozen=True)
class Change:
    """What happened to a topic.

    ``kind`` is ``snapshot`` (``state`` replaced whole; ``discontinuity`` when it replaced a
    position held before: a resume past the history, a new epoch, a gap), ``event`` (one
    entity changed: ``event`` is the frame), or ``coalesced`` (several at once: a slow
    reader, or a server that coalesced for a slow connection). ``state`` is the topic's
    whole state after it.
    """

    kind: Literal["snapshot", "event", "coalesced"]
    topic: str
    position: Position
    state: dict[str, Any]
    discontinuity: bool = False
    event: dict[str, Any] | None = None


class Next(Enum):
    NOTHING = 0
    RESYNC = 1


_END = object()


@dataclass
class TopicState:
    """The client's copy of a topic: apply an event only when its epoch is ours and its
    offset is ours + 1, drop one already applied, resync on anything else."""

    name: str
    position: Position | None = None
    held: bool = False
    ready: bool = False
    stale: str | None = None
    ended: PulseboardError | None = None
    state: dict[str, Any] = field(default_factory=dict)
    readers: list[asyncio.Queue[Any]] = field(default_factory=list)

    def receive(self, frame: dict[str, Any]) -> Next:
        at = self.position
        kind = frame.get("type")
        if kind == "snapshot":
            self.state = dict(frame["state"])
            discontinuity = self.held
            self.position = Position(frame["epoch"], frame["offset"])
            self.held = self.ready = True
            self._tell("snapshot", discontinuity=discontinuity)
        elif kind == "event":
            if at is None:
                return Next.NOTHING  # waiting for a snapshot
            if frame["epoch"] != at.epoch:
                return Next.RESYNC
            if frame["offset"] <= at.offset:
                return Next.NOTHING  # a duplicate
            if frame["offset"] != at.offset + 1:
                return Next.RESYNC
            if frame["event"] == "DELETED":
                self.state.pop(frame["entity_id"], None)
            else:
                self.state[frame["entity_id"]] = frame["payload"]
            self.position = Position(at.epoch, frame["offset"])
            self._tell("event", event=frame)
        elif kind == "coalesced":
            if at is None or frame["epoch"] != at.epoch or frame["from"] != at.offset:
                return Next.RESYNC
            self.state.update(frame["state"])
            for gone in frame["deleted"]:
                self.state.pop(gone, None)
            self.position = Position(at.epoch, frame["offset"])
            self._tell("coalesced")
        elif kind == "resumed":
            if at is None or frame["epoch"] != at.epoch or frame["offset"] != at.offset:
                return Next.RESYNC
            self.ready = True
        return Next.NOTHING

    def forget(self) -> None:
        """The next subscribe asks for a snapshot."""
        self.position = None
        self.ready = False

    def end(self, error: PulseboardError) -> None:
        self.ended = error
        for reader in self.readers:
            reader.put_nowait(_END)

    def _tell(self, kind: Any, *, discontinuity: bool = False, event: Any = None) -> None:
        assert self.position is not None
        change = Change(kind, self.name, self.position, dict(self.state), discontinuity, event)
        for reader in self.readers:
            if reader.full():
                # A reader this far behind gets the latest state in one change instead.
                while not reader.empty():
                    reader.get_nowait()
                change = Change("coalesced", self.name, self.position, dict(self.state))
            reader.put_nowait(change)
