"""The envelope codec: what goes on the wire comes back, anything else is refused."""

import contextlib
import json
import random
import re

import pytest

from queuelab import envelope as codec
from queuelab.envelope import Envelope, Kind
from queuelab.errors import EnvelopeError, QueuelabError


def wire(**changes: object) -> bytes:
    fields: dict[str, object] = {
        "v": 1,
        "id": "m1",
        "seq": 0,
        "kind": "task",
        "body": {"x": 1},
        "created_at": 1.5,
        "attempt": 1,
    }
    fields.update(changes)
    fields = {k: v for k, v in fields.items() if v is not _DROP}
    return json.dumps(fields).encode()


_DROP = object()


def test_round_trip_keeps_every_field() -> None:
    sent = codec.new({"text": "héllo", "n": [1, 2.5, None]}, 42, kind=Kind.EVENT)
    got = codec.decode(codec.encode(sent))
    assert got == sent
    assert got.size_bytes == len(codec.encode(sent))


def test_retry_counts_the_next_attempt_and_keeps_the_id() -> None:
    sent = codec.new({}, 1)
    again = codec.decode(codec.encode(sent.retry()))
    assert (again.id, again.attempt) == (sent.id, 2)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xff\xfe", "not UTF-8"),
        (b"{not json", "not JSON"),
        (b"[1, 2]", "expected a JSON object, got an array"),
        (b"", "not JSON"),
        (wire(attempt=_DROP), "missing field(s): attempt"),
        (wire(extra=1), "unknown field(s): extra"),
        (wire(seq="1"), "field 'seq' must be an integer, got a string"),
        (wire(attempt=True), "field 'attempt' must be an integer, got a boolean"),
        (wire(body=[1]), "field 'body' must be an object, got an array"),
        (wire(id=""), "field 'id' must be 1 to 200 characters"),
        (wire(seq=-1), "field 'seq' must be >= 0"),
        (wire(attempt=0), "field 'attempt' must be >= 1"),
        (wire(kind="job"), "field 'kind' is 'job'"),
        (wire(v=2), "unsupported format version 2"),
        (b'{"v":1,"v":1}', "duplicate key 'v'"),
        (wire(created_at=None), "field 'created_at' must be"),
        (wire().replace(b"1.5", b"NaN"), "NaN is not valid JSON"),
    ],
)
def test_malformed_input_names_the_problem(data: bytes, reason: str) -> None:
    with pytest.raises(EnvelopeError) as caught:
        codec.decode(data)
    assert reason in str(caught.value)
    assert isinstance(caught.value, QueuelabError)


def test_a_message_over_the_size_limit_is_refused_both_ways() -> None:
    big = codec.new({"blob": "x" * 2000}, 0)
    with pytest.raises(EnvelopeError, match="over the limit of 1000 bytes"):
        codec.encode(big, max_bytes=1000)
    data = codec.encode(big)
    with pytest.raises(EnvelopeError, match="over the limit of 1000 bytes"):
        codec.decode(data, max_bytes=1000)


def test_a_body_that_is_not_plain_json_is_refused_before_sending() -> None:
    with pytest.raises(EnvelopeError, match="not plain JSON"):
        codec.encode(codec.new({"when": object()}, 0))


def test_decode_never_returns_a_half_built_message() -> None:
    partial = wire(body={"ok": True}, seq="oops")
    with pytest.raises(EnvelopeError):
        codec.decode(partial)
    assert isinstance(codec.decode(wire()), Envelope)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"[" * 5000, "nested too deeply"),
        (b'{"v":1,"seq":' + b"9" * 5000 + b"}", "not a usable JSON value"),
        (wire(id="\ud800"), "field 'id' must be printable text"),
        (wire(id="a\nb"), "field 'id' must be printable text"),
        (wire(kind=["task"]), "field 'kind' is ['task']"),
    ],
)
def test_hostile_input_still_raises_only_envelope_error(
    data: bytes, reason: str
) -> None:
    with pytest.raises(EnvelopeError, match=re.escape(reason)):
        codec.decode(data)


def test_random_and_mutated_bytes_raise_nothing_but_envelope_error() -> None:
    rng = random.Random(1234)
    valid = codec.encode(codec.new({"text": "abc", "n": [1, 2]}, 3))
    for _ in range(3000):
        if rng.random() < 0.5:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
        else:
            mutated = bytearray(valid)
            for _ in range(rng.randrange(1, 4)):
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            data = bytes(mutated)
        with contextlib.suppress(EnvelopeError):
            assert isinstance(codec.decode(data), Envelope)


def test_new_refuses_an_unknown_kind_and_a_deep_body() -> None:
    with pytest.raises(EnvelopeError, match="kind 'bogus'"):
        codec.new({}, 0, kind="bogus")  # type: ignore[arg-type]
    deep: dict[str, object] = {}
    node = deep
    for _ in range(5000):
        node["x"] = {}
        node = node["x"]  # type: ignore[assignment]
    with pytest.raises(EnvelopeError, match="not plain JSON"):
        codec.encode(codec.new(deep, 0))
