"""Every error queuelab raises on purpose, under one root.

Catch ``QueuelabError`` to handle anything queuelab itself refuses; errors from
deep inside a client library are translated into one of these at the edge, so
that the message names the broker, the queue or the notebook involved.
"""


class QueuelabError(Exception):
    """Raised for any error that queuelab reports on purpose."""


class ConfigError(QueuelabError):
    """Raised when a setting is invalid before anything is sent or started."""


class EnvelopeError(QueuelabError):
    """Raised when bytes off a queue are not a valid message envelope."""


class BrokerError(QueuelabError):
    """Raised when a broker cannot be found, reached or started."""


class BrokerURLError(BrokerError):
    """Raised when a broker URL is malformed or names an unknown scheme."""


class BrokerUnavailable(BrokerError):
    """Raised when no link of the broker chain serves; lists what was tried."""


class PublishError(QueuelabError):
    """Raised when the broker returns or nacks a publish instead of taking it."""


class NotebookError(QueuelabError):
    """Raised when a course notebook fails; names the notebook and the cell."""
