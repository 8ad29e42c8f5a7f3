"""queuelab: learn, compare and test asynchronous message-queue patterns.

The package implements each pattern twice where the common version is wrong
(labelled ``seed``) and measures both on real brokers. Start with
``queuelab.brokers.find_brokers`` and ``queuelab.experiments``.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("queuelab")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
