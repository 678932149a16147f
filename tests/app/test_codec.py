"""``codec.loads_object``: the hot paths' decoder gives what ``codec.loads`` gives.

With orjson installed it decodes; these tests hold it to ``json`` (``codec.loads``'
decoder) on generated documents and numbers, and run the same checks on the
fallback (no orjson) too.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from fishpredict.app import codec
from fishpredict.errors import FishpredictError


@pytest.fixture(params=["orjson", "json"])
def decoder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "orjson":
        pytest.importorskip("orjson")
    else:
        monkeypatch.setattr(codec, "_orjson", None)
    yield request.param


def _reference(body: bytes) -> Any:
    """What ``codec.loads`` gives, or the exception class it raises."""
    try:
        return codec.loads(body)
    except FishpredictError as exc:
        return type(exc)


def _same(a: Any, b: Any) -> bool:
    """Equal values of equal types, floats bit for bit (-0.0 is not 0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


def _v2(data: str, id_: str = '"r1"') -> bytes:
    return (f'{{"id":{id_},"inputs":[{{"name":"x","datatype":"FP64","shape":[1,2],'
            f'"data":{data}}}]}}').encode()


# numbers as clients write them: repr, short and long mantissas, exponents,
# subnormals, huge and tiny, integers of every size
_NUMBER = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.floats(allow_nan=False, allow_infinity=False).flatmap(
        lambda x: st.integers(0, 25).map(lambda p: f"{x:.{p}e}")),
    st.from_regex(r"\A-?(0|[1-9][0-9]{0,30})(\.[0-9]{1,30})?([eE][+-]?[0-9]{1,3})?\Z"),
    st.integers(-(10**40), 10**40).map(str),
)


@settings(max_examples=600, deadline=None)
@given(st.lists(_NUMBER, min_size=1, max_size=6))
@example(["4.9e-325", "2.2250738585072014e-308", "-0.0", "-0", "1e400", "0.1e-400"])
@example(["18446744073709551615", "18446744073709551616", "-9223372036854775809"])
@example(["1.7976931348623157e308", "1.7976931348623159e308", "5e-324", "2.4703282292062328e-324"])
def test_numbers_decode_as_loads_decodes_them(numbers: list[str]) -> None:
    body = _v2("[" + ",".join(numbers) + "]")
    got = codec.loads_object(body)
    want = _reference(body)
    if got is None:  # declined: the general way answers (orjson refuses 1e400, say)
        return
    data, ref = got["inputs"][0]["data"], want["inputs"][0]["data"]
    for g, r, text in zip(data, ref, numbers, strict=True):
        if isinstance(r, int) and not -(2**63) <= r < 2**64:
            # orjson: the float nearest a literal past 64 bits; a row check takes it so
            assert isinstance(g, (int, float)) and float(g) == float(r), text
        else:
            assert _same(g, r), text


_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-(2**62), 2**62),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8))
_DOC = st.recursive(_SCALAR, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=20)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text(max_size=6), _DOC, max_size=5), st.data())
def test_documents_and_their_mutations_decode_as_loads_decodes_them(
    doc: dict[str, Any], data: st.DataObject
) -> None:
    body = json.dumps(doc, ensure_ascii=data.draw(st.booleans()),
                      separators=(",", ":")).encode()
    # a byte changed or cut: what one decoder takes, the other must take the same way
    if data.draw(st.booleans()) and len(body) > 2:
        at = data.draw(st.integers(1, len(body) - 2))
        body = body[:at] + bytes([data.draw(st.sampled_from(b'{}[]",:0e.-\\u \x00'))]) \
            + body[at + 1:]
    got = codec.loads_object(body)
    want = _reference(body)
    if got is not None:
        assert _same(got, want), body
    elif isinstance(want, dict) and body[:1] == b"{" and body[-1:] == b"}":
        # declined although loads takes it: only what orjson refuses on purpose
        text = body.decode("utf-8", "replace")
        assert "\\ud" in text.lower() or "NaN" in text or "Infinity" in text \
            or any(isinstance(v, float) and math.isinf(v) for v in _leaves(want)), body


def _leaves(doc: Any) -> Iterator[Any]:
    if isinstance(doc, dict):
        for v in doc.values():
            yield from _leaves(v)
    elif isinstance(doc, list):
        for v in doc:
            yield from _leaves(v)
    else:
        yield doc


@pytest.mark.parametrize("body", [
    b' {"a":1}', b'{"a":1} ', b'{"a":1}\n', b'[1]', b'"x"', b'', b'{', b'{"a":NaN}',
    b'{"a":Infinity}', b'\xef\xbb\xbf{"a":1}', b'{"a":"\xff"}', b'{"a":1,}', b'{"a":01}',
    b'{"a":1}{"b":2}',
])
def test_anything_but_one_plain_object_is_declined(decoder: str, body: bytes) -> None:
    assert codec.loads_object(body) is None


@pytest.mark.parametrize("body", [b'{"a":1e400}', b'{"a":"\\ud800"}'])
def test_orjson_declines_what_json_takes_but_no_row_check_would(body: bytes) -> None:
    pytest.importorskip("orjson")
    assert codec.loads_object(body) is None
    assert codec.loads(body)  # json takes it: inf, or a lone surrogate (then declined)


def test_one_object_decodes_with_either_decoder(decoder: str) -> None:
    body = _v2("[1.5,-0.0]", '"é\\u00e9"')
    doc = codec.loads_object(body)
    assert doc is not None and _same(doc, codec.loads(body))
    assert codec.loads_object(b'{"a":1,"a":2}') == {"a": 2}  # the last wins, as in json
