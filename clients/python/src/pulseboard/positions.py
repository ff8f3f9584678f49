"""Where a worker keeps its topics' positions, to resume after its own restart."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Protocol

from .topic import Position


class PositionStore(Protocol):
    """What ``Client.topic(…, positions=)`` reads a topic's position from and saves it to."""

    def get(self, topic: str) -> Position | None: ...

    def save(self, topic: str, position: Position) -> None: ...


class FilePositions:
    """Positions in a JSON file, replaced atomically on every save (a crash leaves the old
    file or the new one, never half of one)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            raw = json.loads(self.path.read_text())
            self._held = {t: Position(p["epoch"], p["offset"]) for t, p in raw.items()}
        except FileNotFoundError:
            self._held = {}

    def get(self, topic: str) -> Position | None:
        return self._held.get(topic)

    def save(self, topic: str, position: Position) -> None:
        if self._held.get(topic) == position:
            return
        self._held[topic] = position
        data = json.dumps({t: p.as_json() for t, p in self._held.items()})
        fd, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        with os.fdopen(fd, "w") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.path)


class MemoryPositions:
    """Positions in memory: for tests, and for a process that resumes only across its own
    reconnects (which the client does anyway)."""

    def __init__(self) -> None:
        self._held: dict[str, Position] = {}

    def get(self, topic: str) -> Position | None:
        return self._held.get(topic)

    def save(self, topic: str, position: Position) -> None:
        self._held[topic] = position
