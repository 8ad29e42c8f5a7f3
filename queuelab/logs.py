"""Logging for notebooks: results, not log spam.

An experiment that breaks things on purpose makes the clients log every
failed reconnect with a traceback, and queuelab log a warning per message it
sends again. Both are right in a service and noise in a lesson, where the
ledger already records every fault. ``quiet()`` keeps errors from queuelab and
silences the clients; ``verbose()`` brings everything back.
"""

import logging

CLIENTS = ("aio_pika", "aiormq", "redis")


def quiet() -> None:
    """Only queuelab errors; nothing from the broker clients."""
    logging.getLogger("queuelab").setLevel(logging.ERROR)
    for name in CLIENTS:
        logging.getLogger(name).setLevel(logging.CRITICAL)


def verbose() -> None:
    """queuelab at info and the clients at warning, for debugging a run."""
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("queuelab").setLevel(logging.INFO)
    for name in CLIENTS:
        logging.getLogger(name).setLevel(logging.WARNING)
