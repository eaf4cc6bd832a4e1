"""How ``/batch-process`` hands its parts to where classification runs (``batch._Batch``), against a recording
stand-in for the server's state: parts are sent ahead across chunk boundaries, never more than ``AHEAD`` at once,
shared out between two runners, never spanning two chunks, and a failed chunk leaves the next one whole."""
from types import SimpleNamespace

import pytest

from astrodash_asgi import batch
from astrodash_asgi.forms import UploadedFile


class Recorder:
    """A server state whose part runners (``lanes`` of them) record each part and answer ``b"<first>-<last>;"``;
    ``events`` holds ("send", start, lane) and ("take", start, lane) in the order they happen."""

    def __init__(self, fail_first_take_of: int | None = None, lanes: int = 1):
        self.events: list[tuple[str, int, int]] = []
        self.settings = SimpleNamespace(top_n=5)
        self.metrics = SimpleNamespace(classified=lambda *a: None)
        self.fail_first_take_of = fail_first_take_of
        self.lanes = [Lane(self, k) for k in range(lanes)]
        self.most_in_flight = 0

    def part_runners(self) -> list:
        return self.lanes

    def sends(self, lane: int | None = None) -> list[int]:
        return [s for kind, s, k in self.events if kind == "send" and lane in (None, k)]

    def index(self, kind: str, start: int) -> int:
        return next(n for n, e in enumerate(self.events) if e[:2] == (kind, start))


class Lane:
    def __init__(self, rec: Recorder, k: int):
        self.rec, self.k = rec, k
        self.in_flight = self.most_in_flight = 0

    def submit(self, fn, entries, names, opts, top_n, call, first, use_msgpack, threads):
        assert fn is batch.encode_entries and first == (names[0] == "f000")
        assert threads == max(1, batch.CORES // len(self.rec.lanes))  # the cores shared out between the runners
        start = int(names[0][1:])
        assert [n for n, _, _ in entries] == names and len(names) <= batch.CALL
        self.rec.events.append(("send", start, self.k))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self.rec.most_in_flight = max(self.rec.most_in_flight, sum(lane.in_flight for lane in self.rec.lanes))
        return _Call(self, start, f"{names[0]}-{names[-1]};".encode(), len(names))


class _Call:
    def __init__(self, lane: Lane, start: int, part: bytes, n: int):
        self.lane, self.start, self.part, self.n = lane, start, part, n

    def result(self):
        rec = self.lane.rec
        self.lane.in_flight -= 1
        rec.events.append(("take", self.start, self.lane.k))
        if self.start == rec.fail_first_take_of:
            rec.fail_first_take_of = None
            raise RuntimeError("worker lost")
        return self.part, self.n


def _batch(rec: Recorder, n: int) -> batch._Batch:
    files = [UploadedFile("files", f"f{i:03d}", b"") for i in range(n)]
    return batch._Batch(rec, None, None, files, use_msgpack=False)


def _expected(start: int, stop: int, call: int) -> bytes:
    return b"".join(f"f{i:03d}-f{min(i + call, stop) - 1:03d};".encode() for i in range(start, stop, call))


@pytest.mark.parametrize("lanes", [1, 2])
@pytest.mark.parametrize("chunk,call,n", [(256, 64, 1000), (8, 4, 21), (6, 4, 20), (3, 64, 8)])
def test_parts_are_sent_ahead_into_the_next_chunk_and_answers_keep_their_order(monkeypatch, chunk, call, n, lanes):
    monkeypatch.setattr(batch, "CORES", 2)
    monkeypatch.setattr(batch, "CHUNK", chunk)
    monkeypatch.setattr(batch, "CALL", call)
    rec = Recorder(lanes=lanes)
    b = _batch(rec, n)
    bounds = [(i, min(i + chunk, n)) for i in range(0, n, chunk)]
    for start, stop in bounds:
        assert b.chunk(start, stop) == _expected(start, stop, min(call, chunk))
    sends = rec.sends()
    assert sends == sorted(set(sends))  # every part sent once, in order
    for start, stop in bounds[:-1]:
        last = max(s for s in sends if s < stop)  # the chunk's last part
        # the next chunk's first part was sent before this chunk's last part was taken: no idle worker between
        assert rec.index("send", stop) < rec.index("take", last)
    # AHEAD parts in flight, never more, shared out: one each of two runners
    assert rec.most_in_flight == min(batch.AHEAD, len(sends))
    assert [lane.most_in_flight for lane in rec.lanes] == [batch.AHEAD // lanes] * lanes
    if lanes == 2:  # the runners take turns
        assert rec.sends(0) == sends[0::2] and rec.sends(1) == sends[1::2]


def test_a_failed_chunk_drops_what_it_sent_ahead_and_the_next_chunk_sends_it_again(monkeypatch):
    monkeypatch.setattr(batch, "CHUNK", 8)
    monkeypatch.setattr(batch, "CALL", 4)
    rec = Recorder(fail_first_take_of=4)  # the second part of the first chunk
    b = _batch(rec, 20)
    with pytest.raises(RuntimeError, match="worker lost"):
        b.chunk(0, 8)
    assert 8 in rec.sends()  # the next chunk's first part had been sent ahead ...
    assert b.chunk(8, 16) == _expected(8, 16, 4)
    assert rec.sends().count(8) == 2  # ... and is sent again
    assert b.chunk(16, 20) == _expected(16, 20, 4)


def test_a_chunk_taken_out_of_turn_starts_afresh(monkeypatch):
    monkeypatch.setattr(batch, "CHUNK", 8)
    monkeypatch.setattr(batch, "CALL", 4)
    rec = Recorder()
    b = _batch(rec, 24)
    assert b.chunk(0, 8) == _expected(0, 8, 4)
    assert b.chunk(16, 24) == _expected(16, 24, 4)  # chunk 8-16 skipped: what was sent for it is not used
