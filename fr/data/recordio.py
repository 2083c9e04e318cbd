"""Pure-Python reader and writer for dmlc-core / MXNet RecordIO, the on-disk format of insightface's
training sets (``train.rec``, ``train.idx``, ``property``). No MXNet needed.

Framing (dmlc-core ``include/dmlc/recordio.h``, ``src/recordio.cc``)
--------------------------------------------------------------------
A file is a sequence of *chunks*. Every chunk is::

    uint32 magic   = 0xced7230a                 (little endian)
    uint32 lrecord = cflag << 29 | length        (cflag: 3 bits, length: 29 bits)
    length bytes of data, then zero padding to the next multiple of 4

``cflag`` 0 is a whole record. A payload that contains the magic word at a 4-byte-aligned offset is split
there by the writer, so that a reader that lost its place can resynchronise by scanning for the magic word:
the part before the magic word is a chunk with ``cflag`` 1 (first) or 2 (middle), the magic word itself is
*dropped*, and the rest continues in the next chunk; the last part has ``cflag`` 3. A reader therefore
re-inserts the magic word after every chunk whose ``cflag`` is 1 or 2. Only the final chunk carries padding
(the splits fall at aligned offsets, so inner chunks are multiples of 4 long already).

Record payload (MXNet ``mx.recordio.pack``)
-------------------------------------------
``struct.pack("IfQQ", flag, label, id, id2)`` (24 bytes), then, when ``flag > 0``, ``flag`` float32 labels
(and the scalar ``label`` field is unused), then the image bytes (JPEG for insightface sets).

insightface layout (``recognition/arcface_torch/dataset.py``, ``MXFaceDataset``)
---------------------------------------------------------------------------------
* key 0: header only, ``flag = 2``, labels ``(a, b)``: image keys are ``1 .. a-1`` and class records are
  keys ``a .. b-1``;
* image keys: ``flag = 0``, ``label`` = class id;
* class record ``a + c``: ``flag = 2``, labels ``(first image key, end image key)`` of class ``c``;
* ``train.idx``: one ``key<TAB>byte offset`` line per record; ``property``: ``classes,height,width``.

Files without a record-0 header (``flag == 0`` at key 0) are accepted too; then every key in the index is an
image, as in insightface.
"""
from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator, Sequence

__all__ = [
    "MAGIC", "IR_FORMAT", "IR_SIZE", "MAX_RECORD_BYTES", "RecordIOError", "IRHeader", "pack", "unpack",
    "encode_lrec", "decode_lrec", "RecordIOReader", "RecordIOWriter", "IndexedRecordIO", "read_idx",
    "read_property", "write_property", "write_records",
]

MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", MAGIC)
IR_FORMAT = "<IfQQ"  # MXNet packs with native "IfQQ": identical (24 bytes, no padding) on little-endian hosts
IR_SIZE = struct.calcsize(IR_FORMAT)
MAX_RECORD_BYTES = (1 << 29) - 1


class RecordIOError(ValueError):
    """A RecordIO file that does not follow the format; the message names the file, key and byte offset."""


def _where(path, key=None, offset=None) -> str:
    parts = [str(path) if path is not None else "<stream>"]
    if key is not None:
        parts.append(f"key {key}")
    if offset is not None:
        parts.append(f"byte offset {offset}")
    return ", ".join(parts)


def encode_lrec(cflag: int, length: int) -> int:
    """``cflag << 29 | length`` (dmlc ``RecordIOWriter::EncodeLRec``)."""
    if not 0 <= cflag <= 7:
        raise ValueError(f"cflag must fit in 3 bits, got {cflag}")
    if not 0 <= length <= MAX_RECORD_BYTES:
        raise ValueError(f"chunk length must fit in 29 bits, got {length}")
    return (cflag << 29) | length


def decode_lrec(lrec: int) -> tuple[int, int]:
    """``(cflag, length)`` from a length word."""
    return (lrec >> 29) & 7, lrec & MAX_RECORD_BYTES


# ----------------------------------------------------------------------------------------------------------
# record payload: IRHeader
# ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class IRHeader:
    """MXNet's image-record header.

    ``label`` is a float when ``flag == 0`` and a tuple of ``flag`` floats otherwise (MXNet then stores the
    labels after the 24-byte header and leaves the scalar field at 0)."""

    flag: int
    label: float | tuple[float, ...]
    id: int = 0
    id2: int = 0

    @property
    def labels(self) -> tuple[float, ...]:
        """The label(s) as a tuple, whatever the flag."""
        return self.label if isinstance(self.label, tuple) else (float(self.label),)


def pack(header: IRHeader, payload: bytes = b"") -> bytes:
    """Serialise ``header`` and ``payload`` the way ``mx.recordio.pack`` does."""
    if isinstance(header.label, (tuple, list)):
        labels = tuple(float(v) for v in header.label)
        head = struct.pack(IR_FORMAT, len(labels), 0.0, header.id, header.id2)
        return head + struct.pack(f"<{len(labels)}f", *labels) + bytes(payload)
    if header.flag != 0:
        raise ValueError(f"IRHeader with flag={header.flag} needs a tuple of {header.flag} labels")
    return struct.pack(IR_FORMAT, 0, float(header.label), header.id, header.id2) + bytes(payload)


def unpack(record: bytes, *, where: str = "<record>") -> tuple[IRHeader, bytes]:
    """Split a record into its :class:`IRHeader` and payload (``mx.recordio.unpack``)."""
    if len(record) < IR_SIZE:
        raise RecordIOError(f"{where}: record is {len(record)} bytes, shorter than the {IR_SIZE}-byte header")
    flag, label, id1, id2 = struct.unpack_from(IR_FORMAT, record, 0)
    if flag == 0:
        return IRHeader(0, float(label), id1, id2), bytes(record[IR_SIZE:])
    end = IR_SIZE + 4 * flag
    if len(record) < end:
        raise RecordIOError(f"{where}: header says {flag} float labels but the record ends after "
                            f"{len(record) - IR_SIZE} bytes of labels")
    labels = struct.unpack_from(f"<{flag}f", record, IR_SIZE)
    return IRHeader(flag, tuple(float(v) for v in labels), id1, id2), bytes(record[end:])


# ----------------------------------------------------------------------------------------------------------
# framing
# ----------------------------------------------------------------------------------------------------------
class RecordIOReader:
    """Reads records from a binary stream; :meth:`read_at` seeks, :meth:`__iter__` reads sequentially.

    >>> with open("train.rec", "rb") as f:
    ...     first = RecordIOReader(f, path="train.rec").read_at(0)
    """

    def __init__(self, stream: BinaryIO, *, path=None):
        self.stream = stream
        self.path = path

    def read_at(self, offset: int, *, key=None) -> bytes:
        """The record starting at byte ``offset``, multi-part chunks joined with the magic word restored."""
        self.stream.seek(offset)
        rec = self._read_record(key=key)
        if rec is None:
            raise RecordIOError(f"{_where(self.path, key, offset)}: offset is at or past the end of the file")
        return rec

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        """``(offset, record)`` for every record from the current position to the end of the stream."""
        while True:
            offset = self.stream.tell()
            rec = self._read_record()
            if rec is None:
                return
            yield offset, rec

    def _read_record(self, key=None) -> bytes | None:
        parts: list[bytes] = []
        first = True
        while True:
            offset = self.stream.tell()
            head = self.stream.read(8)
            if not head and first:
                return None
            where = _where(self.path, key, offset)
            if len(head) < 8:
                raise RecordIOError(f"{where}: truncated record: {len(head)} of the 8 chunk-header bytes present")
            magic, lrec = struct.unpack("<II", head)
            if magic != MAGIC:
                raise RecordIOError(f"{where}: wrong magic 0x{magic:08x} (expected 0x{MAGIC:08x}); "
                                    "the index offset is wrong or the file is corrupt")
            cflag, length = decode_lrec(lrec)
            if cflag > 3 or (first and cflag not in (0, 1)) or (not first and cflag not in (2, 3)):
                state = "record start" if first else "continuation of a multi-part record"
                raise RecordIOError(f"{where}: invalid continuation flag {cflag} at a {state}")
            padded = (length + 3) & ~3
            data = self.stream.read(padded)
            if len(data) < padded:
                raise RecordIOError(f"{where}: truncated record: chunk says {length} bytes "
                                    f"(+{padded - length} padding) but only {len(data)} remain in the file")
            parts.append(data[:length])
            if cflag in (0, 3):
                return b"".join(parts)
            parts.append(_MAGIC_BYTES)  # the writer dropped the magic word here; put it back
            first = False


class RecordIOWriter:
    """Writes records in dmlc-core framing: byte-identical to ``dmlc::RecordIOWriter::WriteRecord``.

    A payload is split wherever the magic word occurs at a 4-byte-aligned offset (see the module docstring).
    """

    def __init__(self, stream: BinaryIO):
        self.stream = stream
        self.split_count = 0  # number of magic words removed (dmlc's ``except_counter_``)

    def write(self, record: bytes) -> int:
        """Append ``record``; returns the byte offset where it starts."""
        buf = memoryview(bytes(record))
        n = len(buf)
        if n > MAX_RECORD_BYTES:
            raise ValueError(f"RecordIO records must be shorter than 2**29 bytes, got {n}")
        offset = self.stream.tell()
        start = 0
        for i in range(0, n & ~3, 4):
            if buf[i:i + 4] == _MAGIC_BYTES:
                self._chunk(1 if start == 0 else 2, buf[start:i])
                start = i + 4
                self.split_count += 1
        self._chunk(3 if start != 0 else 0, buf[start:])
        pad = -n % 4
        if pad:
            self.stream.write(b"\0" * pad)
        return offset

    def _chunk(self, cflag: int, data) -> None:
        self.stream.write(struct.pack("<II", MAGIC, encode_lrec(cflag, len(data))))
        self.stream.write(data)


# ----------------------------------------------------------------------------------------------------------
# side files
# ----------------------------------------------------------------------------------------------------------
def read_idx(path) -> dict[int, int]:
    """``{key: byte offset}`` from a ``.idx`` file (``key<TAB>offset`` lines, as MXIndexedRecordIO writes)."""
    path = Path(path)
    out: dict[int, int] = {}
    with open(path, encoding="ascii", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            fields = line.split("\t")
            try:
                key, off = int(fields[0]), int(fields[1])
            except (ValueError, IndexError):
                raise RecordIOError(f"{path}, line {lineno}: expected 'key<TAB>offset', got {line[:60]!r}") from None
            if key in out:
                raise RecordIOError(f"{path}, line {lineno}: key {key} appears twice")
            if off < 0:
                raise RecordIOError(f"{path}, line {lineno}: negative offset {off} for key {key}")
            out[key] = off
    return out


def read_property(path) -> tuple[int, int, int]:
    """``(num_classes, height, width)`` from an insightface ``property`` file (``"238,112,112"``)."""
    path = Path(path)
    text = path.read_text().strip()
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) <= 0:
        raise RecordIOError(f"{path}: expected 'classes,height,width' (three positive integers), got {text[:60]!r}")
    return values  # type: ignore[return-value]


def write_property(path, num_classes: int, height: int, width: int) -> None:
    Path(path).write_text(f"{int(num_classes)},{int(height)},{int(width)}")


# ----------------------------------------------------------------------------------------------------------
# indexed access
# ----------------------------------------------------------------------------------------------------------
class IndexedRecordIO:
    """Random access by key through the ``.idx`` file (MXNet's ``MXIndexedRecordIO``, without MXNet).

    ``mode="r"``: ``read_idx(key) -> bytes`` / ``header(key)`` / ``keys``. ``mode="w"``: ``write_idx(key, record)``;
    the ``.idx`` file is written on :meth:`close`. The file handle is reopened after a ``fork`` (DataLoader
    workers), so an instance can be shared with worker processes.

    >>> with IndexedRecordIO("train.idx", "train.rec") as rec:
    ...     header, jpeg = unpack(rec.read_idx(1))
    """

    def __init__(self, idx_path, rec_path, mode: str = "r"):
        if mode not in ("r", "w"):
            raise ValueError(f"mode must be 'r' or 'w', got {mode!r}")
        self.idx_path, self.rec_path, self.mode = Path(idx_path), Path(rec_path), mode
        self._file: BinaryIO | None = None
        self._pid = None
        if mode == "r":
            for p in (self.rec_path, self.idx_path):
                if not p.exists():
                    raise FileNotFoundError(f"RecordIO file not found: {p}")
            self.idx = read_idx(self.idx_path)
            self.file_size = self.rec_path.stat().st_size
            for key, off in self.idx.items():
                if off >= self.file_size:
                    raise RecordIOError(f"{self.idx_path}: key {key} points at byte {off}, past the end of "
                                        f"{self.rec_path} ({self.file_size} bytes); .idx and .rec do not match")
        else:
            self.idx = {}
            self._file = open(self.rec_path, "wb")
            self._writer = RecordIOWriter(self._file)
            self._pid = os.getpid()

    # -- reading ---------------------------------------------------------------------------------------
    @property
    def keys(self) -> list[int]:
        return list(self.idx)

    def __len__(self) -> int:
        return len(self.idx)

    def __contains__(self, key) -> bool:
        return key in self.idx

    def _reader(self) -> RecordIOReader:
        if self._file is None or self._pid != os.getpid():
            self._file = open(self.rec_path, "rb")
            self._pid = os.getpid()
        return RecordIOReader(self._file, path=self.rec_path)

    def read_idx(self, key: int) -> bytes:
        """The full record stored under ``key``."""
        if self.mode != "r":
            raise io.UnsupportedOperation(f"{self.rec_path} is open for writing")
        try:
            offset = self.idx[key]
        except KeyError:
            raise KeyError(f"{self.idx_path}: no record with key {key}") from None
        return self._reader().read_at(offset, key=key)

    def unpack(self, key: int) -> tuple[IRHeader, bytes]:
        """``(IRHeader, payload)`` of the record under ``key``."""
        return unpack(self.read_idx(key), where=_where(self.rec_path, key, self.idx.get(key)))

    def header(self, key: int) -> IRHeader:
        return self.unpack(key)[0]

    # -- writing ---------------------------------------------------------------------------------------
    def write_idx(self, key: int, record: bytes) -> None:
        """Append ``record`` under ``key`` (keys must be unique)."""
        if self.mode != "w":
            raise io.UnsupportedOperation(f"{self.rec_path} is open for reading")
        if key in self.idx:
            raise KeyError(f"key {key} written twice to {self.rec_path}")
        self.idx[int(key)] = self._writer.write(record)

    def close(self) -> None:
        if self._file is not None:
            if self.mode == "w" and not self._file.closed:
                self._file.close()
                with open(self.idx_path, "w", encoding="ascii") as f:
                    f.writelines(f"{k}\t{v}\n" for k, v in self.idx.items())
            elif not self._file.closed:
                self._file.close()
        self._file = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __getstate__(self):
        if self.mode != "r":
            raise TypeError("an IndexedRecordIO open for writing cannot be pickled")
        state = dict(self.__dict__)
        state["_file"], state["_pid"] = None, None
        return state

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def write_records(rec_path, idx_path, records: Sequence[tuple[int, bytes]]) -> None:
    """Write ``(key, record)`` pairs to a ``.rec``/``.idx`` pair (convenience for fixtures and tests)."""
    with IndexedRecordIO(idx_path, rec_path, "w") as w:
        for key, rec in records:
            w.write_idx(key, rec)
