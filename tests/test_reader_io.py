"""Reading a file's bytes (``reader_dispatch._read_file``) and the binary check over a prefix without copying it
(``looks_binary(data, limit)``), against Python's own file reading and slicing."""
import os
import threading

from hypothesis import given, settings, strategies as st

from astrodash_core.reader_base import looks_binary
from astrodash_core.reader_dispatch import _read_file


def test_file_bytes_equal_pythons_read(tmp_path):
    for size in (0, 1, 4095, 65536, 3 * 1024 * 1024 + 7):
        p = tmp_path / f"f{size}"
        p.write_bytes(os.urandom(size))
        with open(p, "rb") as fh:
            assert _read_file(str(p)) == fh.read()


def test_a_pipe_with_no_size_is_read_to_its_end(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    payload = b"4000 1.5\n" * 300_000  # 2.7 MB: more than one read, and fstat says 0 bytes

    def write():
        with open(fifo, "wb") as fh:
            fh.write(payload)

    writer = threading.Thread(target=write)
    writer.start()
    assert _read_file(str(fifo)) == payload
    writer.join()


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300).map(lambda b: b * 30), st.integers(1, 10_000))
def test_binary_check_of_a_prefix_equals_the_check_of_its_copy(data, limit):
    assert looks_binary(data, limit) == looks_binary(data[:limit])
    assert looks_binary(data) == looks_binary(data, None)
