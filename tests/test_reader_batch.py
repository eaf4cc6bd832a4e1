"""``read_many``/``iter_read`` (many sources in runs, on threads) against ``read_spectra`` source by source, and
the batch file reader (``_files.read_files``) against Python's own reading."""
import gzip
import io
import os
import threading
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

import astrodash_core as ad
from astrodash_core import reader_batch
from astrodash_core._files import read_files
from astrodash_core.errors import SpectrumReadError
from astrodash_core.reader_base import Reader
from astrodash_core.reader_batch import iter_read, read_many

from conftest import shared_data

DATA = Path(__file__).parent / "data"


def _bits(a):
    return None if a is None else a.view(np.uint64).tolist()


def _same_spectra(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert (g.name, g.redshift, g.meta) == (w.name, w.redshift, w.meta)
        assert (_bits(g.wave), _bits(g.flux), _bits(g.error)) == (_bits(w.wave), _bits(w.flux), _bits(w.error))


def _fits_bytes() -> bytes:
    h = fits.PrimaryHDU(np.linspace(1.0, 2.0, 200))
    h.header.update(CRVAL1=4000.0, CDELT1=5.0, CRPIX1=1.0, CUNIT1="Angstrom")
    buf = io.BytesIO()
    h.writeto(buf)
    return buf.getvalue()


@pytest.fixture
def mixed(tmp_path):
    """Sources of every kind, good and bad, with what ``read_spectra`` makes of each (a list of spectra, or the
    message of its SpectrumReadError)."""
    table = (DATA / "SN2013dh_56464.500065.dat").read_bytes()
    (tmp_path / "empty.dat").write_bytes(b"")
    (tmp_path / "binary.dat").write_bytes(bytes(range(256)) * 8)
    (tmp_path / "table.dat.gz").write_bytes(gzip.compress(table))
    (tmp_path / "spec.fits").write_bytes(_fits_bytes())
    (tmp_path / "words.txt").write_bytes(b"no numbers here\nat all\n")
    (tmp_path / "adir.dat").mkdir()
    sources = [str(DATA / "SN2013dh_56464.500065.dat"), str(tmp_path / "missing.dat"), tmp_path / "empty.dat",
               str(tmp_path / "binary.dat"), str(tmp_path / "table.dat.gz"), str(DATA / "sn1999aa.lnw"),
               (table, "from_bytes.dat"), np.c_[np.arange(3000.0, 3020.0), np.ones(20)],
               str(tmp_path / "spec.fits"), str(tmp_path / "words.txt"), str(tmp_path / "adir.dat"),
               io.BytesIO(table), str(DATA / "06D4eu.m13.dat")]
    wants = []
    for s in sources:
        if isinstance(s, io.BytesIO):
            s.seek(0)
        try:
            wants.append(ad.read_spectra(s))
        except SpectrumReadError as exc:
            wants.append(str(exc))
        if isinstance(s, io.BytesIO):
            s.seek(0)
    return sources, wants


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("run", [1, 3, 32])
def test_every_kind_of_source_reads_as_read_spectra_reads_it(mixed, threads, run, monkeypatch):
    monkeypatch.setattr(reader_batch, "RUN", run)
    sources, wants = mixed
    got = read_many(sources, threads=threads, on_error="collect")
    assert len(got) == len(wants)
    for g, w in zip(got, wants):
        if isinstance(w, str):
            assert isinstance(g, SpectrumReadError) and str(g) == w
        else:
            _same_spectra(g, w)
    assert len(got[5]) > 1  # the SNID template: every epoch


def test_raise_stops_at_the_first_bad_source_in_order(mixed):
    sources, wants = mixed
    with pytest.raises(SpectrumReadError) as exc:
        read_many(sources, threads=2)
    assert str(exc.value) == wants[1]  # missing.dat, the first bad one
    assert read_many([]) == []
    with pytest.raises(ValueError, match="on_error"):
        read_many([], on_error="ignore")
    with pytest.raises(ValueError, match="threads"):
        read_many([], threads=0)
    with pytest.raises(ValueError, match="on_error"):
        iter_read([], on_error="ignore")  # at the call, not at the first item


@pytest.mark.parametrize("threads", [1, 2])
def test_real_spectra_read_as_read_spectra_reads_them(threads):
    real = shared_data("real", what="real spectra")
    paths = sorted(p for p in real.iterdir() if p.name != "manifest.csv")[::7]
    for path, got in zip(paths, read_many(paths, threads=threads, on_error="collect")):
        try:
            want = ad.read_spectra(path)
        except SpectrumReadError as exc:
            assert str(got) == str(exc)
        else:
            _same_spectra(got, want)


def test_iter_read_reads_ahead_a_bounded_number_of_runs(monkeypatch):
    """Memory stays flat: by the time the first result is out, at most two runs per thread were taken from the
    sources, and stopping early leaves no thread behind."""
    monkeypatch.setattr(reader_batch, "RUN", 4)
    table = (DATA / "SN2013dh_56464.500065.dat").read_bytes()
    taken = []

    def sources():
        for k in range(1000):
            taken.append(k)
            yield (table, f"s{k}.dat")

    before = threading.active_count()
    it = iter_read(sources(), threads=2)
    first = next(it)
    assert first[0].name == "s0"
    assert len(taken) <= 2 * 2 * 4 + 4
    it.close()
    assert threading.active_count() == before


@pytest.mark.parametrize("n, threads, runs", [(20, 2, [10, 10]), (40, 2, [16, 16, 8]), (3, 2, [2, 1]),
                                              (30, 3, [10, 10, 10]), (1, 2, [1])])
def test_a_batch_is_cut_into_runs_for_every_thread(n, threads, runs, monkeypatch):
    """Runs of at most RUN sources, at least one per thread when the batch's length is known (a few long files
    are read in parallel, not as one run)."""
    seen = []
    monkeypatch.setattr(reader_batch, "read_run", lambda run: seen.append(len(run)) or [[]] * len(run))
    read_many([(b"", f"{k}.dat") for k in range(n)], threads=threads)
    assert sorted(seen, reverse=True) == runs


class _Counting(Reader):
    """A third-party reader without its own ``read_many``: the base class reads file by file."""

    name = "counting"
    suffixes = (".cnt",)

    def sniff(self, head, filename):
        return 1.0 if head.startswith(b"CNT") else 0.0

    def read(self, data, filename):
        if b"bad" in data:
            raise ValueError("a bad line")
        return [ad.Spectrum(np.arange(1.0, 11.0) * 1000, np.ones(10), name="c")]


class _Plain:
    """The same reader not built on ``Reader``: it has no ``read_many`` at all."""

    name, suffixes = _Counting.name, _Counting.suffixes
    sniff, read = _Counting.sniff, _Counting.read


@pytest.mark.parametrize("reader", [_Counting(), _Plain()], ids=["Reader's read_many", "no read_many"])
def test_a_reader_without_read_many_reads_file_by_file(reader, monkeypatch):
    from astrodash_core import plugins

    assert not hasattr(reader, "read_many") or type(reader).read_many is Reader.read_many
    readers = [reader, *plugins.get_readers()]
    monkeypatch.setattr(plugins, "get_readers", lambda: readers)
    got = read_many([(b"CNT ok", "a.cnt"), (b"CNT bad", "b.cnt")], on_error="collect")
    assert got[0][0].meta["format"] == "counting"
    assert isinstance(got[1], SpectrumReadError) and "counting reader could not parse it (a bad line)" in str(got[1])


def test_read_files_gives_regular_files_whole_and_none_for_the_rest(tmp_path):
    (tmp_path / "a").write_bytes(b"1 2\n" * 1000)
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "d").mkdir()
    os.mkfifo(tmp_path / "fifo")
    big = os.urandom(300_000)  # above the size read into memory of its own: read straight into its bytes
    (tmp_path / "big").write_bytes(big)
    names = [tmp_path / "a", tmp_path / "big", tmp_path / "empty", tmp_path / "missing", tmp_path / "d",
             tmp_path / "fifo", tmp_path / "big", tmp_path / "a"]
    got = read_files([os.fsencode(p) for p in names])
    assert got == [b"1 2\n" * 1000, big, b"", None, None, None, big, b"1 2\n" * 1000]
    assert read_files([]) == []
    with pytest.raises(TypeError, match="str"):
        read_files([str(tmp_path / "a")])


def test_read_files_refuses_a_file_whose_size_is_not_its_content():
    """``/proc`` files report size 0 and hold text: read whole, they are longer than fstat says, so the batch
    reader leaves them to Python's reading (which reads to the end)."""
    status = Path("/proc/self/status")
    if not status.exists():
        pytest.skip("no /proc")
    assert read_files([os.fsencode(status)]) == [None]
