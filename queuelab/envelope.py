"""The message envelope and its strict JSON codec.

Every message queuelab sends is an envelope: an id that names the message for
its whole life (redeliveries keep it), a sequence number from its producer, a
kind, a JSON-object body, the wall-clock time it was created and the attempt
number of the delivery. The ledger keys everything on the id.

The codec is strict on purpose. Bytes that come off a queue are untrusted
input: anything that is not exactly an envelope (bad UTF-8, not JSON, missing
or extra fields, wrong types, NaN, duplicate keys, too large) raises
``EnvelopeError`` with the reason, so that a consumer can dead-letter the
message instead of crashing or half-processing it. Nothing here unpickles.
"""

import json
import math
import time
import uuid
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from queuelab.errors import EnvelopeError

FORMAT_VERSION = 1
DEFAULT_MAX_BYTES = 1 << 20  # 1 MiB: far above a task description, far below RAM

_FIELDS = ("v", "id", "seq", "kind", "body", "created_at", "attempt")


class Kind(StrEnum):
    """What a message is for."""

    TASK = "task"  # work for exactly one consumer
    EVENT = "event"  # news for every subscriber


@dataclass(frozen=True, slots=True)
class Envelope:
    """One message. Build it with :func:`new`; change it with :meth:`retry`."""

    id: str
    seq: int
    kind: Kind
    body: dict[str, Any]
    created_at: float
    attempt: int = 1
    # Not on the wire: filled in by decode() so callers can report sizes.
    size_bytes: int = field(default=0, compare=False)

    def retry(self) -> "Envelope":
        """The same message for its next delivery attempt."""
        return replace(self, attempt=self.attempt + 1)


def new(
    body: dict[str, Any],
    seq: int,
    *,
    kind: Kind = Kind.TASK,
    message_id: str | None = None,
) -> Envelope:
    """A fresh envelope for ``body``, stamped with the current time."""
    if kind not in Kind._value2member_map_:
        raise EnvelopeError(f"kind {kind!r} is not one of: {', '.join(Kind)}")
    envelope = Envelope(
        id=message_id or uuid.uuid4().hex,
        seq=seq,
        kind=Kind(kind),
        body=body,
        created_at=time.time(),
    )
    _check_fields(envelope)
    return envelope


def encode(envelope: Envelope, *, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """Compact UTF-8 JSON for ``envelope``; refuses what decode would refuse."""
    _check_fields(envelope)
    wire = {
        "v": FORMAT_VERSION,
        "id": envelope.id,
        "seq": envelope.seq,
        "kind": envelope.kind.value,
        "body": envelope.body,
        "created_at": envelope.created_at,
        "attempt": envelope.attempt,
    }
    try:
        data = json.dumps(wire, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError, RecursionError) as exc:
        raise EnvelopeError(f"body is not plain JSON: {_short(exc)}") from None

    if len(data) > max_bytes:
        raise EnvelopeError(
            f"message {envelope.id} is {len(data)} bytes, over the limit of "
            f"{max_bytes} bytes"
        )
    return data


def decode(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Envelope:
    """Parse bytes off a queue into an envelope, or raise ``EnvelopeError``."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise EnvelopeError(f"expected bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise EnvelopeError(
            f"message is {len(data)} bytes, over the limit of {max_bytes} bytes"
        )

    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EnvelopeError(f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        wire = json.loads(
            text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constants
        )
    except json.JSONDecodeError as exc:
        raise EnvelopeError(f"not JSON: {exc.msg} at position {exc.pos}") from None
    except RecursionError:
        raise EnvelopeError("nested too deeply to be an envelope") from None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise EnvelopeError(f"not a usable JSON value: {_short(exc)}") from None

    envelope = _from_wire(wire)
    return replace(envelope, size_bytes=len(data))


def _from_wire(wire: object) -> Envelope:
    if not isinstance(wire, dict):
        raise EnvelopeError(f"expected a JSON object, got {_json_type(wire)}")

    missing = [name for name in _FIELDS if name not in wire]
    if missing:
        raise EnvelopeError(f"missing field(s): {', '.join(missing)}")
    extra = sorted(set(wire) - set(_FIELDS))
    if extra:
        raise EnvelopeError(f"unknown field(s): {', '.join(extra)}")
    if wire["v"] != FORMAT_VERSION or type(wire["v"]) is not int:
        raise EnvelopeError(f"unsupported format version {wire['v']!r}")

    try:
        kind = Kind(wire["kind"])
    except (ValueError, TypeError):
        kinds = ", ".join(k.value for k in Kind)
        raise EnvelopeError(
            f"field 'kind' is {wire['kind']!r}, expected one of: {kinds}"
        ) from None

    envelope = Envelope(
        id=wire["id"],
        seq=wire["seq"],
        kind=kind,
        body=wire["body"],
        created_at=wire["created_at"],
        attempt=wire["attempt"],
    )
    _check_fields(envelope)
    return envelope


def _check_fields(envelope: Envelope) -> None:
    _expect("id", envelope.id, str)
    if not envelope.id or len(envelope.id) > 200:
        raise EnvelopeError("field 'id' must be 1 to 200 characters")
    if not envelope.id.isprintable() or _has_surrogate(envelope.id):
        raise EnvelopeError("field 'id' must be printable text")
    _expect("seq", envelope.seq, int)
    if envelope.seq < 0:
        raise EnvelopeError(f"field 'seq' must be >= 0, got {envelope.seq}")
    _expect("body", envelope.body, dict)
    _expect("created_at", envelope.created_at, float, int)
    if not math.isfinite(envelope.created_at):
        raise EnvelopeError("field 'created_at' must be a finite number")
    _expect("attempt", envelope.attempt, int)
    if envelope.attempt < 1:
        raise EnvelopeError(f"field 'attempt' must be >= 1, got {envelope.attempt}")


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def _expect(name: str, value: object, *types: type) -> None:
    # bool is an int to Python but not to JSON readers: refuse it explicitly.
    if isinstance(value, bool) or not isinstance(value, types):
        wanted = " or ".join(_PY_TO_JSON[t] for t in types)
        raise EnvelopeError(f"field '{name}' must be {wanted}, got {_json_type(value)}")


_PY_TO_JSON = {str: "a string", int: "an integer", float: "a number", dict: "an object"}


def _json_type(value: object) -> str:
    names = {bool: "a boolean", type(None): "null", list: "an array"}
    return names.get(type(value)) or _PY_TO_JSON.get(type(value), type(value).__name__)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise EnvelopeError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _no_constants(name: str) -> None:
    raise EnvelopeError(f"{name} is not valid JSON")
