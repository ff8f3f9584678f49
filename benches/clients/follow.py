"""Follows one topic with the Python client and reports what it cost: the load of
benches/clients/run.mjs (the same lines as follow.mjs)."""

import asyncio
import json
import resource
import sys

from pulseboard import Client


async def main() -> None:
    url, token, name = sys.argv[1:4]
    counts = {"event": 0, "coalesced": 0}

    async def report() -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while await reader.readline():
            usage = resource.getrusage(resource.RUSAGE_SELF)
            print(json.dumps({"events": counts["event"], "coalesced": counts["coalesced"], "offset": subscription.position.offset if subscription.position else 0, "cpu_ms": (usage.ru_utime + usage.ru_stime) * 1000, "rss_kib": usage.ru_maxrss}), flush=True)

    async with Client(url, token=token) as client:
        subscription = client.topic(name)
        reporting = asyncio.create_task(report())  # held: a task only weakly referenced may be collected
        async for change in subscription:
            if change.kind == "snapshot":
                print("ready", flush=True)
            else:
                counts[change.kind] += 1


asyncio.run(main())
