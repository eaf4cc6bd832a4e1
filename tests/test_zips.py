"""Zip members taken out of an archive (astrodash_asgi.zips): cut out compressed, inflated to exactly what zipfile
gives, never past their declared size, with their CRC-32 checked; a damaged member is its own error."""
import io
import struct
import zipfile
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asgi_support import make_zip

from astrodash_asgi import zips
from astrodash_asgi.zips import Archive, InflateError, Member, ZipLimits, extract, inflate, inflated

LIMITS = ZipLimits(max_entries=1000, max_total_bytes=1 << 30, max_ratio=1e9, max_file_bytes=1 << 28)


def _central_field(archive: bytes, index: int, offset: int, fmt: str, value) -> bytes:
    """``archive`` with a field of its ``index``-th central directory record set to ``value`` (``offset`` from the
    record's signature): what a damaged or lying archive declares."""
    out = bytearray(archive)
    pos = -1
    for _ in range(index + 1):
        pos = out.index(b"PK\x01\x02", pos + 1)
    struct.pack_into(fmt, out, pos + offset, value)
    return bytes(out)


@pytest.fixture(params=["isal", "zlib"])
def inflater(request, monkeypatch):
    """Both inflaters: ISA-L (installed with the package) and zlib (where isal is missing)."""
    if request.param == "zlib":
        monkeypatch.setattr(zips, "_decompressobj", zlib.decompressobj)
        monkeypatch.setattr(zips, "_inflate_error", zlib.error)
    else:
        pytest.importorskip("isal")
    return request.param


contents = st.binary(max_size=5000) | st.text(alphabet="0123456789. e+-\n", max_size=20000).map(str.encode)


@settings(max_examples=60, deadline=None)
@given(st.lists(contents, min_size=1, max_size=6), st.sampled_from([zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED]),
       st.integers(0, 9))
def test_members_inflate_to_what_zipfile_reads(blobs, method, level):
    for setter in ((zlib.decompressobj, zlib.error), None):
        entries = {f"{i}.dat": b for i, b in enumerate(blobs)}
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", method, compresslevel=level if method == zipfile.ZIP_DEFLATED else None) as z:
            for name, data in entries.items():
                z.writestr(name, data)
        archive = Archive(buf.getvalue(), "t.zip", LIMITS)
        with zipfile.ZipFile(buf) as reference:
            expected = [(i.filename, reference.read(i), None) for i in reference.infolist()]
        if setter is not None:
            original = zips._decompressobj, zips._inflate_error
            zips._decompressobj, zips._inflate_error = setter
        try:
            got = [archive.read(i) for i in archive.infos]
        finally:
            if setter is not None:
                zips._decompressobj, zips._inflate_error = original
        assert got == expected


def test_a_member_is_cut_out_compressed_and_declares_its_sizes():
    data = b"1 2\n" * 5000
    archive = Archive(make_zip({"a.dat": data}), "t.zip", LIMITS)
    name, member, error = archive.member(archive.infos[0])
    assert (name, error) == ("a.dat", None)
    assert isinstance(member, Member) and member.method == zipfile.ZIP_DEFLATED
    assert member.size == len(data) and member.crc == zlib.crc32(data)
    assert len(member.data) == archive.infos[0].compress_size < len(data) // 10
    assert zlib.decompress(member.data, -15) == data


def test_an_archive_on_disk_reads_as_the_same_bytes_in_memory(tmp_path):
    entries = {f"{i}.dat": bytes([i]) * (1000 * i) for i in range(8)}
    blob = make_zip(entries)
    path = tmp_path / "t.zip"
    path.write_bytes(blob)
    on_disk, in_memory = Archive(str(path), "t.zip", LIMITS), Archive(blob, "t.zip", LIMITS)
    assert [on_disk.read(i) for i in on_disk.infos] == [in_memory.read(i) for i in in_memory.infos] \
        == [(k, v, None) for k, v in entries.items()]
    on_disk.close()
    assert on_disk.member(on_disk.infos[1]) == ("1.dat", None, "cannot be extracted (the archive is closed)")


def test_a_member_that_inflates_past_its_declared_size_is_its_own_error_and_stops_there(inflater):
    """A lying directory (a zip bomb's trick): inflating stops one byte past the declared size."""
    entries = {"a.dat": b"1 2\n" * 100, "bomb.dat": b"0" * 2_000_000, "c.dat": b"3 4\n" * 100}
    lying = _central_field(make_zip(entries), 1, 24, "<I", 1000)  # uncompressed size of bomb.dat
    out = extract(lying, "t.zip", LIMITS)
    assert out[0] == ("a.dat", entries["a.dat"], None) and out[2] == ("c.dat", entries["c.dat"], None)
    assert out[1] == ("bomb.dat", None, "cannot be extracted (inflates beyond its declared size)")


@pytest.mark.parametrize("damage, message", [
    (lambda m: m._replace(crc=m.crc ^ 1), "bad CRC-32"),
    (lambda m: m._replace(data=m.data[: len(m.data) // 2]), "its deflate data ends early"),
    (lambda m: m._replace(size=m.size + 5), "inflates to 51200 bytes where its directory declares 51205"),
    (lambda m: m._replace(data=b"\xff" * 40), "invalid deflate data"),
    (lambda m: m._replace(method=zipfile.ZIP_BZIP2), "compression method 12 is not supported"),
])
def test_a_damaged_member_names_what_is_wrong(inflater, damage, message):
    data = bytes(range(256)) * 200
    archive = Archive(make_zip({"a.dat": data}), "t.zip", LIMITS)
    _, member, _ = archive.member(archive.infos[0])
    assert inflate(member) == data
    with pytest.raises(InflateError, match=message):
        inflate(damage(member))


def test_a_stored_member_of_another_length_than_declared_is_refused():
    data = b"5 6\n" * 50
    archive = Archive(make_zip({"a.dat": data}, zipfile.ZIP_STORED), "t.zip", LIMITS)
    _, member, _ = archive.member(archive.infos[0])
    assert inflate(member) == data
    with pytest.raises(InflateError, match="holds 200 bytes where its directory declares 199"):
        inflate(member._replace(size=199))


def test_a_local_header_that_disagrees_with_the_directory_is_an_error():
    blob = bytearray(make_zip({"a.dat": b"1 2\n" * 10, "b.dat": b"3 4\n" * 10}))
    blob[30:35] = b"x.dat"  # the first local header's name
    out = extract(bytes(blob), "t.zip", LIMITS)
    assert out[0][1] is None and "file name in directory 'a.dat' and header b'x.dat' differ" in out[0][2]
    assert out[1] == ("b.dat", b"3 4\n" * 10, None)
    moved = _central_field(make_zip({"a.dat": b"1"}), 0, 42, "<I", 7)  # the local header's offset, off target
    assert extract(moved, "t.zip", LIMITS)[0][2] == "cannot be extracted (bad magic number for file header)"


def test_an_archive_cut_short_inside_a_member_is_an_error():
    blob = make_zip({"a.dat": bytes(range(256)) * 100})
    size = zipfile.ZipFile(io.BytesIO(blob)).infolist()[0].compress_size
    longer = _central_field(blob, 0, 20, "<I", size + 10**6)  # compressed size past the archive's end
    assert extract(longer, "t.zip", LIMITS)[0][2] == "cannot be extracted (the archive ends inside the entry)"


def test_other_compression_methods_are_inflated_by_zipfile():
    entries = {"a.dat": b"7 8\n" * 300, "b.dat": b"9 1\n" * 30}
    archive = Archive(make_zip(entries, zipfile.ZIP_BZIP2), "t.zip", LIMITS)
    assert [archive.member(i) for i in archive.infos] == [(k, v, None) for k, v in entries.items()]


@pytest.mark.parametrize("parallel_from", [0, 1 << 40])
def test_inflating_on_two_threads_keeps_every_entry_in_its_place(monkeypatch, parallel_from):
    monkeypatch.setattr(zips, "PARALLEL_MIN_BYTES", parallel_from)
    entries = {f"{i:02d}.dat": f"{i} {i}\n".encode() * (50 * i + 1) for i in range(23)}
    lying = _central_field(make_zip(entries), 7, 16, "<I", 0)  # 07.dat's CRC-32
    archive = Archive(lying, "t.zip", LIMITS)
    members = [archive.member(i) for i in archive.infos]
    members.insert(3, ("unsafe.dat", None, "unsafe entry name"))
    out = inflated(members)
    expected = [(k, v, None) for k, v in entries.items()]
    expected[7] = ("07.dat", None, "cannot be extracted (bad CRC-32)")
    expected.insert(3, ("unsafe.dat", None, "unsafe entry name"))
    assert out == expected


class _Unseekable(io.RawIOBase):
    """A write-only stream zipfile cannot seek in: it then writes each entry's sizes and CRC-32 in a data
    descriptor after its data (flag bit 3), as streaming zip tools do."""

    def __init__(self):
        self.buf = bytearray()

    def writable(self):
        return True

    def write(self, b):
        self.buf += b
        return len(b)


def _reference(blob: bytes) -> list:
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
        return [(i.filename, z.read(i), None) for i in z.infolist()]


def test_archives_as_other_tools_write_them_read_as_zipfile_reads_them():
    """Data descriptors (a streamed zip), zip64 records, bytes before the archive (a self-extracting one) and
    names in UTF-8: the members cut out through their local headers are zipfile's bytes."""
    entries = {"plain.dat": b"1 2\n" * 400, "ünïcode ü.dat": b"3 4\n" * 300, "empty.dat": b""}
    stream = _Unseekable()
    with zipfile.ZipFile(stream, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    streamed = bytes(stream.buf)
    assert all(i.flag_bits & 0x08 for i in zipfile.ZipFile(io.BytesIO(streamed)).infolist())
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            with z.open(info, "w", force_zip64=True) as fh:
                fh.write(data)
    zip64 = buf.getvalue()
    prefixed = b"#!/bin/sh\nexit 0\n" + make_zip(entries)
    for blob in (streamed, zip64, prefixed):
        assert extract(blob, "t.zip", LIMITS) == _reference(blob) == [(k, v, None) for k, v in entries.items()]
