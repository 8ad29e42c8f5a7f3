"""The RabbitMQ consumer as it is commonly written, kept for comparison.

This is the rate-limited consumer found in most tutorials, with only a ledger
added so that what it does can be measured. Do not copy it: its faults are
the point, and :class:`queuelab.rabbitmq.Consumer` is the corrected version.

.. code-block:: python

    async def on_message(self, message):
        async with message.process():          # "auto-ACK on success"
            task_data = json.loads(message.body.decode())
            try:
                await self.process_task(task_data)
            finally:
                await asyncio.sleep(self.interval)   # "rate limiting"

What goes wrong:

- ``message.process()`` rejects *without requeue* when the block raises
  (``requeue=False`` is its default). A task that fails once is dropped, or
  dead-lettered if the queue happens to have a dead-letter exchange. The
  comment usually next to it, "will be NACKed and requeued", is wrong.
- A body that is not JSON raises inside the same block and is dropped the
  same way, with nothing kept to inspect.
- The sleep limits this one consumer. N consumers run at N times the rate,
  and the task's own duration adds to the sleep, so one consumer runs slower
  than the rate.
"""

import asyncio
import logging

from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)

from queuelab import envelope as codec
from queuelab.ledger import Event, Ledger
from queuelab.rabbitmq.connection import connect
from queuelab.rabbitmq.consumer import Task
from queuelab.rabbitmq.topology import WorkQueue, as_work_queue

log = logging.getLogger(__name__)


class SeedConsumer:
    """The commonly written rate-limited consumer (see the module docstring)."""

    def __init__(
        self,
        url: str,
        queue: "str | WorkQueue",
        task: Task,
        *,
        interval_s: float = 0.0,
        prefetch: int = 1,
        ledger: Ledger | None = None,
        worker: str = "seed",
    ) -> None:
        self.url = url
        self.spec = as_work_queue(queue)
        self.task = task
        self.interval_s = interval_s
        self.prefetch = prefetch
        self.ledger = ledger if ledger is not None else Ledger()
        self.worker = worker
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None

    async def start(self) -> None:
        self._connection = await connect(self.url)
        self._channel = await self._connection.channel()
        await self._channel.set_qos(prefetch_count=self.prefetch)
        self._queue = await self.spec.declare(self._channel)
        await self._queue.consume(self.on_message)

    async def stop(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        message_id = message.message_id or ""
        try:
            async with message.process():
                envelope = codec.decode(message.body)
                self.ledger.record(Event.DELIVERED, message_id, worker=self.worker)
                try:
                    await self.task(envelope)
                    self.ledger.record(Event.PROCESSED, message_id, worker=self.worker)
                finally:
                    await asyncio.sleep(self.interval_s)
        except Exception as exc:
            # process() has already rejected the message without requeue.
            self.ledger.record(
                Event.NACKED,
                message_id,
                worker=self.worker,
                detail=f"rejected by process(): {exc!r}",
            )
            log.warning(
                "%s: message %s on %s rejected by process(): %r",
                self.worker,
                message_id,
                self.spec.name,
                exc,
            )
