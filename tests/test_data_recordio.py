"""RecordIO framing: byte-level layout, multi-part records, round trips, corruption errors, and the two real
files (the multipart fixture written by an independent implementation, and the CelebA training set)."""
from __future__ import annotations

import io
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fr.data._util import decode_image
from fr.data.recordio import (IR_SIZE, MAGIC, IndexedRecordIO, IRHeader, RecordIOError, RecordIOReader,
                              RecordIOWriter, decode_lrec, encode_lrec, pack, read_idx, read_property, unpack,
                              write_records)
from fr.paths import find_data

M = struct.pack("<I", MAGIC)


def frames(raw: bytes) -> list[tuple[int, int, int]]:
    """(offset, cflag, length) of every chunk of a .rec byte string, walking the framing by hand."""
    out, pos = [], 0
    while pos < len(raw):
        magic, lrec = struct.unpack_from("<II", raw, pos)
        assert magic == MAGIC
        cflag, length = lrec >> 29, lrec & ((1 << 29) - 1)
        out.append((pos, cflag, length))
        pos += 8 + length + (-length % 4 if cflag in (0, 3) else 0)
    return out


def test_lrec_encoding():
    assert encode_lrec(3, 5) == (3 << 29) | 5
    assert decode_lrec(encode_lrec(2, 123456)) == (2, 123456)
    with pytest.raises(ValueError):
        encode_lrec(0, 1 << 29)


def test_single_chunk_layout_is_exact():
    buf = io.BytesIO()
    off = RecordIOWriter(buf).write(b"abcde")
    assert off == 0
    assert buf.getvalue() == M + struct.pack("<I", 5) + b"abcde" + b"\0\0\0"


def test_magic_word_splits_record_like_dmlc():
    payload = b"\x01\x02\x03\x04" + M + b"\x05\x06"
    buf = io.BytesIO()
    w = RecordIOWriter(buf)
    w.write(payload)
    expected = (M + struct.pack("<I", (1 << 29) | 4) + b"\x01\x02\x03\x04"
                + M + struct.pack("<I", (3 << 29) | 2) + b"\x05\x06\0\0")
    assert buf.getvalue() == expected
    assert w.split_count == 1
    assert RecordIOReader(io.BytesIO(expected)).read_at(0) == payload


def test_magic_at_start_end_consecutive_and_unaligned():
    cases = {
        "start": M + b"tail",                      # empty first part
        "end": b"head" + M,                        # empty last part
        "twice": b"abcd" + M + M + b"xyz",          # an empty middle part
        "only": M,
        "unaligned": b"ab" + M + b"cd",            # not at a multiple of 4: not split
    }
    for name, payload in cases.items():
        buf = io.BytesIO()
        w = RecordIOWriter(buf)
        w.write(payload)
        got = RecordIOReader(io.BytesIO(buf.getvalue())).read_at(0)
        assert got == payload, name
        n_split = 0 if name == "unaligned" else payload.count(M)
        assert w.split_count == n_split, name
        flags = [f for _, f, _ in frames(buf.getvalue())]
        assert flags == ([0] if n_split == 0 else [1] + [2] * (n_split - 1) + [3]), name


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.one_of(st.just(M), st.binary(min_size=4, max_size=4)), max_size=12)
                .map(b"".join).flatmap(lambda body: st.binary(max_size=3).map(lambda tail: body + tail)),
                min_size=1, max_size=6))
def test_round_trip_property(payloads):
    buf = io.BytesIO()
    w = RecordIOWriter(buf)
    offsets = [w.write(p) for p in payloads]
    assert len(buf.getvalue()) % 4 == 0
    r = RecordIOReader(io.BytesIO(buf.getvalue()))
    assert [r.read_at(o) for o in offsets] == payloads
    assert [rec for _, rec in RecordIOReader(io.BytesIO(buf.getvalue()))] == payloads


def test_irheader_pack_unpack():
    rec = pack(IRHeader(0, 7.0, 3, 0), b"JPEG")
    assert len(rec) == IR_SIZE + 4 and struct.unpack("IfQQ", rec[:24]) == (0, 7.0, 3, 0)
    h, payload = unpack(rec)
    assert h == IRHeader(0, 7.0, 3, 0) and payload == b"JPEG"
    rec = pack(IRHeader(2, (5287.0, 5525.0)))
    assert struct.unpack("<IfQQ2f", rec) == (2, 0.0, 0, 0, 5287.0, 5525.0)
    h, payload = unpack(rec)
    assert h.flag == 2 and h.label == (5287.0, 5525.0) and payload == b""
    with pytest.raises(RecordIOError, match="header says 3 float labels"):
        unpack(rec[:24].replace(b"\x02", b"\x03", 1) + rec[24:])
    with pytest.raises(RecordIOError, match="shorter than"):
        unpack(b"short")


def test_indexed_round_trip(tmp_path):
    recs = [(0, pack(IRHeader(2, (3.0, 3.0)))), (1, pack(IRHeader(0, 0.0, 1), M * 3)),
            (2, pack(IRHeader(0, 1.0, 2), b"x" * 4097 + M))]
    write_records(tmp_path / "t.rec", tmp_path / "t.idx", recs)
    idx = read_idx(tmp_path / "t.idx")
    assert list(idx) == [0, 1, 2] and idx[0] == 0
    with IndexedRecordIO(tmp_path / "t.idx", tmp_path / "t.rec") as r:
        for key, rec in recs:
            assert r.read_idx(key) == rec
        assert r.header(2).label == 1.0
        with pytest.raises(KeyError, match="no record with key 9"):
            r.read_idx(9)


def _corrupt_copy(tmp_path, mutate):
    recs = [(k, pack(IRHeader(0, 0.0, k), bytes(range(40)) * 3)) for k in range(3)]
    write_records(tmp_path / "t.rec", tmp_path / "t.idx", recs)
    raw = bytearray((tmp_path / "t.rec").read_bytes())
    idx = read_idx(tmp_path / "t.idx")
    (tmp_path / "t.rec").write_bytes(mutate(raw, idx))
    return IndexedRecordIO(tmp_path / "t.idx", tmp_path / "t.rec")


def test_wrong_magic_names_key_and_offset(tmp_path):
    def mutate(raw, idx):
        raw[idx[1]:idx[1] + 4] = b"\xde\xad\xbe\xef"
        return bytes(raw)
    r = _corrupt_copy(tmp_path, mutate)
    r.read_idx(0)
    with pytest.raises(RecordIOError, match=r"t\.rec, key 1, byte offset \d+: wrong magic 0xefbeadde"):
        r.read_idx(1)


def test_truncated_record(tmp_path):
    r = _corrupt_copy(tmp_path, lambda raw, idx: bytes(raw[:idx[2] + 20]))
    with pytest.raises(RecordIOError, match="key 2.*truncated record"):
        r.read_idx(2)


def test_invalid_continuation_flag(tmp_path):
    def mutate(raw, idx):
        cflag_len = struct.unpack_from("<I", raw, idx[0] + 4)[0]
        struct.pack_into("<I", raw, idx[0] + 4, cflag_len | (2 << 29))
        return bytes(raw)
    with pytest.raises(RecordIOError, match="key 0.*invalid continuation flag 2"):
        _corrupt_copy(tmp_path, mutate).read_idx(0)


def test_index_past_end_of_file(tmp_path):
    with pytest.raises(RecordIOError, match="past the end"):
        _corrupt_copy(tmp_path, lambda raw, idx: bytes(raw[:idx[2]]))


def test_bad_idx_and_property(tmp_path):
    (tmp_path / "bad.idx").write_text("0\t0\n1 12\n")
    with pytest.raises(RecordIOError, match="line 2"):
        read_idx(tmp_path / "bad.idx")
    (tmp_path / "property").write_text("238,112")
    with pytest.raises(RecordIOError, match="classes,height,width"):
        read_property(tmp_path / "property")


# ---------------------------------------------------------------------------------------------- real files
def _fixture():
    p = find_data("fixtures/multipart/train.rec")
    if p is None:
        pytest.skip("fixtures/multipart not under the data root (set FR_DATA=/work/shared/datasets)")
    return p.parent


@pytest.mark.data
def test_multipart_fixture_decodes_to_red_green_blue():
    d = _fixture()
    raw = (d / "train.rec").read_bytes()
    chunks_per_record = {}
    idx = read_idx(d / "train.idx")
    starts = {off: key for key, off in idx.items()}
    key = None
    for off, cflag, _ in frames(raw):
        if cflag in (0, 1):
            key = starts[off]
        chunks_per_record[key] = chunks_per_record.get(key, 0) + 1
    assert chunks_per_record[2] == 2 and chunks_per_record[3] == 4  # as the README says the writer split them
    with IndexedRecordIO(d / "train.idx", d / "train.rec") as r:
        assert r.header(0).label == (4.0, 6.0)
        assert [r.header(k).label for k in (4, 5)] == [(1.0, 3.0), (3.0, 4.0)]
        colours = []
        for k, want_label in ((1, 0.0), (2, 0.0), (3, 1.0)):
            h, jpeg = r.unpack(k)
            assert h.flag == 0 and h.label == want_label
            assert jpeg[:2] == b"\xff\xd8"
            img = decode_image(jpeg, where=f"key {k}")
            assert img.shape == (112, 112, 3)
            mean = img.reshape(-1, 3).mean(0)
            assert mean.max() > 180 and sorted(mean)[1] < 60  # one saturated channel, the others dark
            colours.append(int(mean.argmax()))
        assert colours == [0, 1, 2]  # red, green, blue
    # our writer reproduces the independent writer's bytes exactly
    buf = io.BytesIO()
    w = RecordIOWriter(buf)
    with IndexedRecordIO(d / "train.idx", d / "train.rec") as r:
        for k in sorted(idx, key=idx.get):
            assert w.write(r.read_idx(k)) == idx[k]
    assert buf.getvalue() == raw and w.split_count == 4


@pytest.mark.data
def test_celeba_record_layout():
    rec = find_data("celeba_train/train.rec", "train.rec")
    if rec is None:
        pytest.skip("CelebA train.rec not under the data root (set FR_DATA=/work/shared/datasets)")
    assert read_property(rec.parent / "property") == (238, 112, 112)
    with IndexedRecordIO(rec.with_suffix(".idx"), rec) as r:
        h0 = r.header(0)
        assert h0.flag == 2 and h0.label == (5287.0, 5525.0)
        assert len(r) == 5525 and set(r.keys) == set(range(5525))
        h, jpeg = r.unpack(1)
        assert h.flag == 0 and h.label == 0.0
        assert decode_image(jpeg, where="key 1").shape == (112, 112, 3)
        first, last = r.header(5287).label, r.header(5524).label
        assert first[0] == 1.0 and last[1] == 5287.0
