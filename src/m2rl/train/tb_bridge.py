"""Follow TensorBoard event files and hand each step's scalars to a callback (OpenRLHF -> MLflow).

OpenRLHF logs to TensorBoard (`--logger.tensorboard_dir`); rather than change it, the train stage
follows the event files it writes. Event files are TFRecord streams (length, masked CRC32C, an `Event`
protobuf, masked CRC32C); this module reads them incrementally with a small protobuf decoder, so it
needs neither TensorFlow nor the tensorboard package. A record still being written is left for the
next poll. Scalars come as `simple_value` or as a one-element float tensor (new-style summaries).
"""

from __future__ import annotations

import struct
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

EVENT_GLOB = "events.out.tfevents.*"


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    for b in data:
        c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


class EventFileError(ValueError):
    """A corrupt record in an event file (bad checksum)."""


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int, object]]:
    """(field number, wire type, value) of a protobuf message; length-delimited values as bytes."""
    i, n = 0, len(buf)
    while i < n:
        key, i = _varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            val, i = _varint(buf, i)
        elif wire == 1:
            val, i = buf[i : i + 8], i + 8
        elif wire == 2:
            size, i = _varint(buf, i)
            val, i = buf[i : i + size], i + size
        elif wire == 5:
            val, i = buf[i : i + 4], i + 4
        else:
            raise EventFileError(f"unsupported protobuf wire type {wire}")
        yield num, wire, val


def _tensor_scalar(buf: bytes) -> float | None:
    dtype, values = 0, []
    for num, wire, val in _fields(buf):
        if num == 1 and wire == 0:
            dtype = val
        elif num == 4 and wire == 2 and val:  # tensor_content (raw little-endian)
            fmt = {1: "<f", 2: "<d"}.get(dtype)
            if fmt and len(val) >= struct.calcsize(fmt):
                values.append(struct.unpack_from(fmt, val)[0])
        elif num == 5:  # float_val, packed or not
            values.extend(struct.unpack(f"<{len(val) // 4}f", val) if wire == 2 else struct.unpack("<f", val))
        elif num == 6:  # double_val
            values.extend(struct.unpack(f"<{len(val) // 8}d", val) if wire == 2 else struct.unpack("<d", val))
    return float(values[0]) if values else None


def parse_event(buf: bytes) -> tuple[int, float, dict[str, float]]:
    """An `Event` protobuf -> (step, wall_time, {tag: scalar})."""
    step, wall, scalars = 0, 0.0, {}
    for num, wire, val in _fields(buf):
        if num == 1 and wire == 1:
            wall = struct.unpack("<d", val)[0]
        elif num == 2 and wire == 0:
            step = val - (1 << 64) if val >= 1 << 63 else val
        elif num == 5 and wire == 2:  # summary
            for vnum, _, value in _fields(val):
                if vnum != 1:
                    continue
                tag, scalar = None, None
                for fnum, fwire, fval in _fields(value):
                    if fnum == 1:
                        tag = fval.decode("utf-8", "replace")
                    elif fnum == 2 and fwire == 5:
                        scalar = struct.unpack("<f", fval)[0]
                    elif fnum == 8 and fwire == 2:
                        scalar = _tensor_scalar(fval)
                if tag is not None and scalar is not None:
                    scalars[tag] = float(scalar)
    return step, wall, scalars


def read_records(path: str | Path, offset: int = 0, check_crc: bool = True) -> tuple[list[bytes], int]:
    """Complete TFRecord payloads from `offset`; returns them and the offset after the last complete one."""
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read()
    out, i = [], 0
    while len(data) - i >= 12:
        header = data[i : i + 8]
        (length,) = struct.unpack("<Q", header)
        if len(data) - i < 12 + length + 4:
            break
        if check_crc and struct.unpack("<I", data[i + 8 : i + 12])[0] != masked_crc32c(header):
            raise EventFileError(f"{path}: bad length checksum at byte {offset + i}")
        payload = data[i + 12 : i + 12 + length]
        if check_crc and struct.unpack("<I", data[i + 12 + length : i + 16 + length])[0] != masked_crc32c(payload):
            raise EventFileError(f"{path}: bad data checksum at byte {offset + i}")
        out.append(payload)
        i += 16 + length
    return out, offset + i


class TensorBoardBridge:
    """Polls every event file under `logdir`; calls `on_step(step, scalars)` once per completed step.

    A step counts as complete when a later step appears (OpenRLHF writes a step's scalars together) or at
    `flush()`. Steps are delivered in increasing order, each once.
    """

    def __init__(self, logdir: str | Path, on_step: Callable[[int, dict[str, float]], None]):
        self.logdir = Path(logdir)
        self.on_step = on_step
        self._offsets: dict[Path, int] = {}
        self._bad: set[Path] = set()
        self._pending: dict[int, dict[str, float]] = {}
        self._done = -1
        self.steps_seen = 0

    def poll(self) -> int:
        """Read what is new; deliver the steps now complete. Returns how many steps were delivered."""
        if self.logdir.is_dir():
            for path in sorted(self.logdir.rglob(EVENT_GLOB)):
                if path in self._bad:
                    continue
                try:
                    records, self._offsets[path] = read_records(path, self._offsets.get(path, 0))
                except EventFileError as exc:  # a corrupt file is reported and skipped, the others go on
                    print(f"m2rl: tensorboard bridge skips {exc}", file=sys.stderr, flush=True)
                    self._bad.add(path)
                    continue
                for rec in records:
                    step, _, scalars = parse_event(rec)
                    if scalars and step > self._done:
                        self._pending.setdefault(step, {}).update(scalars)
        if not self._pending:
            return 0
        last = max(self._pending)
        return self._deliver([s for s in sorted(self._pending) if s < last])

    def flush(self) -> int:
        self.poll()
        return self._deliver(sorted(self._pending))

    def _deliver(self, steps: list[int]) -> int:
        for s in steps:
            self.on_step(s, self._pending.pop(s))
            self._done = max(self._done, s)
            self.steps_seen = max(self.steps_seen, s)
        return len(steps)

    def follow(self, stop: threading.Event, interval: float = 5.0) -> threading.Thread:
        """Poll in a daemon thread until `stop` is set, then flush; returns the started thread."""

        def loop() -> None:
            while not stop.wait(interval):
                self.poll()
            self.flush()

        thread = threading.Thread(target=loop, name="m2rl-tb-bridge", daemon=True)
        thread.start()
        return thread
