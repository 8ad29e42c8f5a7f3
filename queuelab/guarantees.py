"""The three delivery guarantees, and where each one acknowledges.

A consumer tells the broker "done" with an acknowledgement. When it sends that
ack, relative to the task's effect, decides what a crash costs:

- at-most-once: ack when the message is handed over, before the task. A crash
  during the task loses the message; nothing runs twice.
- at-least-once: ack after the task's effect. A crash before the ack makes the
  broker deliver the message again, so nothing is lost, but a crash between
  the effect and the ack makes the effect happen twice.
- effectively-once (what is often sold as "exactly-once"): at-least-once
  delivery plus an idempotent effect. The effect and a "done" mark for the
  message id are written together, so a redelivered message is recognised and
  its effect is not applied again.
"""

from enum import StrEnum


class Guarantee(StrEnum):
    AT_MOST_ONCE = "at-most-once"
    AT_LEAST_ONCE = "at-least-once"
    EFFECTIVELY_ONCE = "effectively-once"

    @property
    def acks_before_task(self) -> bool:
        return self is Guarantee.AT_MOST_ONCE

    @property
    def idempotent(self) -> bool:
        return self is Guarantee.EFFECTIVELY_ONCE
