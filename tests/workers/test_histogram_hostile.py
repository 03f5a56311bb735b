"""Hostile histogram encodings (issue 12 item 4): bounded inflation, bounded tokens, and the
vectorised counts decoder agreeing with the byte-by-byte reference on any stream."""

from __future__ import annotations

import base64
import json
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.errors import ResultsError
from analysis.results import Results, check_histograms, parse_results
from tests.analysis.test_reports import OBJECTIVES, synthetic_results
from workers import histogram as h
from workers.histogram import COUNTS_LEN, MAX_PAYLOAD_BYTES, Histogram


def _encoded(stream: bytes) -> str:
    """Return the V2 encoding (our layout) of a raw varint ``stream``."""
    payload = struct.pack(">IIIIQQd", 0x1C849313, len(stream), 0, 3, 1, h.HIGHEST_NS, 1.0) + stream
    body = zlib.compress(payload, 9)
    return base64.b64encode(struct.pack(">II", 0x1C849314, len(body)) + body).decode()


def _outcome(decode: object, stream: bytes) -> object:
    try:
        return decode(stream).tolist()  # type: ignore[operator]
    except ValueError as exc:
        return str(exc)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(st.integers(-40, 40), st.integers(-(2**62), 2**62),
                          st.sampled_from([-COUNTS_LEN, COUNTS_LEN, -(COUNTS_LEN + 1)])),
                max_size=60),
       st.binary(max_size=3))
def test_the_vectorised_decoder_agrees_with_the_reference_loop(tokens: list[int],
                                                                tail: bytes) -> None:
    """Any token stream (plus stray bytes, possibly a truncated varint) gives the same counts,
    or the same error, from the vectorised decoder as from the byte-by-byte loop."""
    stream = bytes(h._zigzag_varints(np.array(tokens, dtype=np.int64))) + tail
    assert _outcome(h._read_counts, stream) == _outcome(h._read_counts_loop, stream)


@pytest.mark.parametrize("stream, error", [
    pytest.param(b"\x01" * (COUNTS_LEN + 1), f"more tokens than this layout's {COUNTS_LEN}",
                 id="more-tokens-than-buckets"),
    pytest.param(bytes(h._zigzag_varints(np.array([-COUNTS_LEN, -1], dtype=np.int64))),
                 f"zero run to index {COUNTS_LEN + 1} goes beyond", id="zero-run-past-the-end"),
    pytest.param(bytes(h._zigzag_varints(np.array([-COUNTS_LEN, 5], dtype=np.int64))),
                 f"count at index {COUNTS_LEN} lies beyond", id="count-past-the-end"),
    pytest.param(b"\x80", "truncated varint", id="truncated"),
])
def test_streams_past_the_layout_are_refused(stream: bytes, error: str) -> None:
    """A stream that would read past the layout's buckets is refused by both decoders."""
    for decode in (h._read_counts, h._read_counts_loop):
        with pytest.raises(ValueError, match=error):
            decode(stream)


def test_payload_bytes_is_the_inflated_size() -> None:
    """payload_bytes tells the inflated size (header 40 bytes + varints) without decoding."""
    assert Histogram.payload_bytes(_encoded(b"\x02\x04")) == 42
    assert Histogram.payload_bytes(Histogram().encode()) == 40
    assert MAX_PAYLOAD_BYTES == 40 + 9 * COUNTS_LEN


def test_check_histograms_names_where_the_budget_runs_out() -> None:
    """With a budget, the histogram at which all of them together inflate past it is named;
    without one, the same document passes (each is valid)."""
    widest = _encoded(b"\x01" * COUNTS_LEN)  # 28,672 one-byte tokens: valid, 28,712 bytes
    data = Results.model_validate_json(synthetic_results(OBJECTIVES).to_json()).model_dump(
        by_alias=True)
    for window in data["windows"]:
        window["lag"] = widest
    results = Results.model_validate(data)
    check_histograms(results)
    with pytest.raises(ResultsError, match=r"^windows\[3\]\.lag: the histograms inflate to "
                                             r"more than 100000 bytes together$"):
        check_histograms(results, budget_bytes=100_000)


def test_check_encoding_checks_everything_but_the_counts() -> None:
    """check_encoding returns the inflated size of a wrapper decode would accept (counts past
    the layout are decode's to find) and refuses another layout as decode does."""
    tokens = np.array([-COUNTS_LEN, 5], dtype=np.int64)
    past_the_layout = _encoded(bytes(h._zigzag_varints(tokens)))
    assert h.check_encoding(past_the_layout) == Histogram.payload_bytes(past_the_layout)
    with pytest.raises(ValueError, match="lies beyond"):
        Histogram.decode(past_the_layout)
    other_layout = base64.b64decode(Histogram().encode())
    payload = bytearray(zlib.decompress(other_layout[8:]))
    payload[12:16] = struct.pack(">I", 2)  # significant figures 2
    body = zlib.compress(bytes(payload))
    wrapped = base64.b64encode(struct.pack(">II", 0x1C849314, len(body)) + body).decode()
    for check in (h.check_encoding, Histogram.decode):
        with pytest.raises(ValueError, match="unsupported layout lowest=1 significant_figures=2"):
            check(wrapped)


def test_a_file_read_and_a_posted_document_name_a_wrong_count_alike() -> None:
    """A total whose count is not its histogram's is refused with the same words by the results
    reader (after the file name) and by the promotion service's check."""
    data = json.loads(synthetic_results(OBJECTIVES).to_json())
    series = data["histograms"]["service"][0]
    series["count"] += 1
    named = (f"histograms.service[0] ({series['endpoint']}, {series['outcome']}): count "
             f"{series['count']} does not match its encoded histogram ({series['count'] - 1})")
    with pytest.raises(ResultsError) as read:
        parse_results(json.dumps(data), source="r.json")
    with pytest.raises(ResultsError) as posted:
        check_histograms(Results.model_validate(data), budget_bytes=1 << 20)
    assert (str(read.value), str(posted.value)) == (f"r.json: {named}", named)


def _first_refused(encodings: list[str]) -> int | None:
    """Return the index of the first encoding Histogram.decode refuses (the reference)."""
    for index, encoded in enumerate(encodings):
        try:
            Histogram.decode(encoded)
        except ValueError:
            return index
    return None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(
    st.lists(st.one_of(st.integers(-40, 40), st.integers(-(2**62), 2**62),
                       st.sampled_from([-COUNTS_LEN, COUNTS_LEN, -(COUNTS_LEN + 1),
                                        -(COUNTS_LEN - 1)])), max_size=12),
    st.binary(max_size=2), st.booleans()), max_size=6))
def test_first_undecodable_agrees_with_decoding_each(
        streams: list[tuple[list[int], bytes, bool]]) -> None:
    """Over any list of encodings (token streams plus stray bytes, some wrappers cut short),
    first_undecodable names the same one as decoding each in turn, or none."""
    encodings = []
    for tokens, tail, cut in streams:
        encoded = _encoded(bytes(h._zigzag_varints(np.array(tokens, dtype=np.int64))) + tail)
        encodings.append(encoded[:20] if cut and tail else encoded)
    assert h.first_undecodable(encodings) == _first_refused(encodings)


def test_first_undecodable_finds_counts_past_the_layout_among_many() -> None:
    """Among 500 valid encodings one whose counts run past the layout (a header decode
    accepts) is found at its index; with it removed, none is."""
    valid = [Histogram.from_values(np.arange(i + 1) * 1_000).encode() for i in range(500)]
    tokens = np.array([-(COUNTS_LEN - 1), 5, 7], dtype=np.int64)  # the 7 lies past the end
    encodings = [*valid[:321], _encoded(bytes(h._zigzag_varints(tokens))), *valid[321:]]
    assert (h.first_undecodable(encodings), h.first_undecodable(valid)) == (321, None)
    too_many = _encoded(b"\x00" * (COUNTS_LEN + 1))  # zero counts, one token past the buckets
    assert h.first_undecodable([*valid[:3], too_many]) == 3
