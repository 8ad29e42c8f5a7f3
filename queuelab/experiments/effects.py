"""The effect a task has, kept where a crash cannot take it back.

In an experiment a task's effect is one record appended to a Redis list: the
message id, when, by which worker, at which attempt. That list is the ground
truth for "processed": a worker killed right after the effect never gets to
write its own ledger line, but the effect is already in Redis, exactly as a
real side effect (a row written, an e-mail sent) would be.

Under effectively-once the record is appended through the idempotency store,
so a redelivered message finds its mark and adds nothing.
"""

import time
from typing import TYPE_CHECKING

import redis.asyncio

from queuelab.idempotency import RedisIdempotency
from queuelab.ledger import COLUMNS, Event

if TYPE_CHECKING:
    import pandas as pd


class EffectLog:
    """Appends and reads the effects of one run."""

    def __init__(
        self, client: "redis.asyncio.Redis", run_id: str, *, idempotent: bool
    ) -> None:
        self.client = client
        self.key = f"queuelab:exp:{run_id}:effects"
        self.marks = f"queuelab:exp:{run_id}:done"
        self._once = RedisIdempotency(client, prefix=self.marks) if idempotent else None

    async def apply(self, message_id: str, worker: str, attempt: int) -> bool:
        """Apply the effect; False when the idempotency store skipped it."""
        record = f"{message_id} {time.monotonic()!r} {worker} {attempt}"
        if self._once is not None:
            return await self._once.apply_once(message_id, self.key, record)
        await self.client.rpush(self.key, record)
        return True

    async def count(self) -> int:
        return int(await self.client.llen(self.key))

    async def events(self) -> "pd.DataFrame":
        """One ``processed`` ledger row per effect applied."""
        import pandas as pd  # not at the top: workers never call this

        rows = []
        for raw in await self.client.lrange(self.key, 0, -1):
            text = raw.decode() if isinstance(raw, bytes) else raw
            message_id, t, worker, attempt = text.split(" ")
            rows.append(
                (
                    float(t),
                    Event.PROCESSED.value,
                    message_id,
                    worker,
                    int(attempt),
                    "effect",
                )
            )
        return pd.DataFrame(rows, columns=COLUMNS)

    async def delete(self) -> None:
        """Remove the effect list and every idempotency mark of the run."""
        keys = [key async for key in self.client.scan_iter(f"{self.marks}:*")]
        await self.client.delete(self.key, *keys)
