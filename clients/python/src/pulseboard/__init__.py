"""Pulseboard's Python client: follow a server's topics gaplessly across reconnects, see
who is on a board, and publish.

    async with Client("http://127.0.0.1:3000") as client:
        async for change in client.topic("metric:kpis"):
            print(change.kind, change.position, change.state)
"""

from .client import CLIENT, Client, Connection, Presence, Subscription
from .errors import PulseboardError
from .frames import PROTOCOL
from .positions import FilePositions, MemoryPositions, PositionStore
from .publisher import Publisher
from .topic import Change, Position

__all__ = [
    "CLIENT",
    "PROTOCOL",
    "Change",
    "Client",
    "Connection",
    "FilePositions",
    "MemoryPositions",
    "Position",
    "PositionStore",
    "Presence",
    "Publisher",
    "PulseboardError",
    "Subscription",
]
__version__ = "0.1.0"
