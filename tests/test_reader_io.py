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


#: The control bytes text does not contain (tab, line feed, vertical tab, form feed and CR are text): the
#: reference below counts them with bytes.translate, independently of the Cython loop.
_CONTROL = bytes(b for b in range(32) if b not in (9, 10, 11, 12, 13))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600).map(lambda b: b * 12), st.integers(-5, 8_000), st.integers(-5, 8_000))
def test_binary_signs_equal_a_search_and_a_count(data, nul_limit, sample):
    from astrodash_core._parse import binary_signs

    head = data[:max(sample, 0)]
    assert binary_signs(data, nul_limit, sample) == (b"\x00" in data[:max(nul_limit, 0)],
                                                     len(head) - len(head.translate(None, _CONTROL)))


def test_the_binary_threshold_is_five_percent_of_the_first_4096_bytes():
    text = b"4000 1.5e-16\n" * 400  # 5,200 bytes of text
    just_under = bytes([1]) * 204 + text  # 204 control bytes in the first 4,096: 4.98 %
    assert not looks_binary(just_under)
    assert looks_binary(bytes([1]) * 205 + text)  # 5.005 %
    assert not looks_binary(text[:4096] + bytes([1]) * 1000)  # after the sample: not counted
    assert looks_binary(text + b"\x00")  # a NUL anywhere in what is looked at
    assert not looks_binary(text + b"\x00", len(text))
