"""Publishing from servers, scripts and CI over the HTTP API, with safe retries."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import httpx

from .errors import PulseboardError


class Publisher:
    """Writes with an ``Idempotency-Key`` on every request, so a retry after a lost answer,
    a 429 or a 5xx applies once; refusals a retry cannot change (``op_refused``,
    ``forbidden``, …) raise :class:`PulseboardError` at once.

    ``async with Publisher(url, token=key) as publisher: await publisher.publish(…)``
    """

    def __init__(self, url: str, *, token: str, retries: int = 5, timeout: float = 10.0, backoff: float = 0.25) -> None:
        self.url = url.rstrip("/")
        self._retries = retries
        self._backoff = backoff
        self._http = httpx.AsyncClient(headers={"authorization": f"Bearer {token}"}, timeout=timeout)

    async def __aenter__(self) -> Publisher:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def publish(self, topic: str, ops: Sequence[dict[str, Any]], *, idempotency_key: str | None = None, user_id: str | None = None, trace_id: str | None = None) -> dict[str, Any]:
        """Applies ``ops`` to one topic, whole or not at all; returns ``{topic, epoch, offset, offsets}``."""
        body: dict[str, Any] = {"ops": list(ops)}
        if user_id:
            body["user_id"] = user_id
        if trace_id:
            body["trace_id"] = trace_id
        return await self._post(f"/api/v1/topics/{quote(topic, safe='')}", body, idempotency_key)

    async def batch(self, writes: Sequence[dict[str, Any]], *, idempotency_key: str | None = None) -> list[dict[str, Any]]:
        """Applies ``[{"topic", "ops"}, …]``, all or none; returns one result per topic."""
        answer = await self._post("/api/v1/batch", {"writes": list(writes)}, idempotency_key)
        return list(answer["results"])

    async def _post(self, path: str, body: dict[str, Any], key: str | None) -> dict[str, Any]:
        headers = {"idempotency-key": key or str(uuid.uuid4())}
        last: PulseboardError | None = None
        retry_after = 0.0
        for attempt in range(self._retries + 1):
            if attempt:
                await asyncio.sleep(max(retry_after, random.random() * self._backoff * 2 ** (attempt - 1)))
            try:
                response = await self._http.post(self.url + path, json=body, headers=headers)
            except httpx.HTTPError as e:
                last = PulseboardError("network", f"{path}: {e}")
                continue
            try:
                answer: dict[str, Any] = response.json()
            except ValueError:
                answer = {}
            if response.is_success:
                return answer
            last = PulseboardError(answer.get("code", "http"), answer.get("message", f"HTTP {response.status_code}"), status=response.status_code)
            retry_after = float(response.headers.get("retry-after", "0") or 0)
            if not (response.status_code >= 500 or response.status_code == 429 or last.code == "idempotency_key_in_flight"):
                raise last
        assert last is not None
        raise last
