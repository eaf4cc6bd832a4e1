"""Readers never crash: a short run of benchmarks/fuzz_readers.py, and every crash it found as a regression test.

The full campaign (>= 100,000 inputs, with time and memory limits per input) is ``benchmarks/fuzz_readers.py``;
here the same engine runs a few hundred inputs with no timing, and each input must be read (as valid spectra)
or raise SpectrumReadError naming the file."""
import gzip
import importlib.util
import io
import json
from pathlib import Path

import numpy as np
import pytest

import astrodash_core as ad
from astrodash_core import SpectrumReadError
from astrodash_core.spectrum import MAX_POINTS

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "fuzz_readers.py"


@pytest.fixture(scope="module")
def fuzz():
    spec = importlib.util.spec_from_file_location("fuzz_readers", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _assert_read_or_named_error(name, data):
    try:
        spectra = ad.read_spectra(data, filename=name)
    except SpectrumReadError as exc:
        assert exc.filename == name and name in str(exc)
        return "rejected"
    for s in spectra:
        assert np.isfinite(s.wave).all() and (np.diff(s.wave) > 0).all() and np.isfinite(s.flux).all()
    return "read"


def test_short_mutation_campaign(fuzz):
    seeds = fuzz.load_seeds(max_real=20, seed=3)
    outcomes = {}
    for index in range(250):
        if index % fuzz.BIG_EVERY == fuzz.BIG_EVERY - 1:
            continue
        name, data, how = fuzz.make_input(seeds, index, seed=3)
        outcome, detail, _, _ = fuzz.run_one(name, data, measure=False)
        assert outcome in ("read", "rejected"), f"input {index} ({how}, {name}): {outcome}: {detail}"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    assert outcomes.get("read", 0) > 20 and outcomes.get("rejected", 0) > 20  # the mutations reach both ends


def test_short_hypothesis_campaign(fuzz):
    from hypothesis import HealthCheck, given, settings

    @settings(max_examples=120, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(fuzz.hypothesis_inputs())
    def check(case):
        name, data, how = case
        outcome, detail, _, _ = fuzz.run_one(name, data, measure=False)
        assert outcome in ("read", "rejected"), f"{how} {name}: {outcome}: {detail}"

    check()


# ---- regressions: each input below crashed a reader or broke a Spectrum invariant before its fix ------------

def _table(rows):
    return "\n".join(rows).encode()


def test_duplicate_wavelengths_near_the_float_limit_average_without_overflow():
    # two rows at 4000 Å with flux 1e308 averaged to inf (and errors of 1e-200 squared to 0)
    rows = [f"{4000 + k} 1.0 0.1" for k in range(1, 15)] + ["4000 1e308 1e-200", "4000 1e308 3e-200"]
    s = ad.read_spectrum(_table(rows), filename="dup.dat")
    assert s.flux[0] == 1e308 and np.isfinite(s.flux).all()
    assert s.error[0] == pytest.approx(np.sqrt(1 + 9) * 1e-200 / 2, rel=1e-12)


def test_deeply_nested_json_is_a_read_error():
    depth = 100_000
    with pytest.raises(SpectrumReadError, match="deep.json: JSON nested too deeply"):
        ad.read_spectrum(b"[" * depth + b"]" * depth, filename="deep.json")


def test_json_number_too_large_for_a_float_is_a_read_error():
    doc = '{"SN": {"spectra": [{"data": [[4000, 1]' + "".join(f", [{4001 + k}, 1]" for k in range(20)) + \
          ', [4100, ' + "9" * 400 + ']]}]}}'
    with pytest.raises(SpectrumReadError, match="big.json: spectrum 0 of SN has non-numeric data"):
        ad.read_spectrum(doc.encode(), filename="big.json")


def test_json_with_an_infinite_catalogue_redshift_reads_without_one():
    rows = [[4000 + 10 * k, 1.0] for k in range(20)]
    doc = json.dumps({"SN": {"redshift": [{"value": "1e999"}], "spectra": [{"data": rows}]}})
    assert ad.read_spectrum(doc.encode(), filename="z.json").redshift is None


def test_redshift_comment_out_of_range_is_ignored_not_fatal():
    rows = ["# z = 1e999"] + [f"{4000 + 5 * k} 1.0" for k in range(20)]
    assert ad.read_spectrum(_table(rows), filename="z.dat").redshift is None


def test_fits_table_with_a_malformed_tform_is_a_read_error():
    from astropy.io import fits
    from astropy.table import Table

    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU(Table({"WAVE": np.arange(4000.0, 4020.0),
                                                             "FLUX": np.ones(20)}))]).writeto(buf)
    data = buf.getvalue().replace(b"TFORM1  = 'D       '", b"TFORM1  = 'WAVE-LOG'")
    with pytest.raises(SpectrumReadError, match="tform.fits: corrupt FITS file"):
        ad.read_spectrum(data, filename="tform.fits")


def test_fits_declaring_more_data_than_the_file_holds_is_a_read_error():
    from astropy.io import fits

    buf = io.BytesIO()
    h = fits.PrimaryHDU(np.ones(100))
    h.header.update(CRVAL1=4000.0, CDELT1=1.0)
    h.writeto(buf)
    data = buf.getvalue().replace(b"NAXIS1  =                  100", b"NAXIS1  =            999999999")
    with pytest.raises(SpectrumReadError, match="naxis.fits: truncated FITS file"):
        ad.read_spectrum(data, filename="naxis.fits")


def test_snid_template_with_infinite_knot_count_is_a_read_error():
    lines = ["1 20 4000 5000 2 sn2000x 1.1 Ia 0", "2 inf 0.5", "1 4000 1", "1 4500 1", "0 1.0"]
    lines += [f"{4000 + 50 * k} {0.1 * (k % 3)}" for k in range(20)]
    with pytest.raises(SpectrumReadError, match="knot.lnw: malformed knot counts"):
        ad.read_spectrum("\n".join(lines).encode(), filename="knot.lnw")


def test_snid_template_with_absurd_epoch_count_is_refused_before_allocating():
    lines = ["999999999 20 4000 5000 99999999 sn2000x 1.1 Ia 0", "1 1 1", "0 1.0"]
    with pytest.raises(SpectrumReadError, match="epochs.lnw: SNID template has 999999999 epochs"):
        ad.read_spectrum("\n".join(lines).encode(), filename="epochs.lnw")


def test_table_longer_than_a_spectrum_is_refused_before_parsing():
    data = b"4000 1\n" * (MAX_POINTS + 1)
    with pytest.raises(SpectrumReadError, match="long.dat: more than 1,000,000 lines"):
        ad.read_spectrum(data, filename="long.dat")


def test_gzip_bomb_is_refused(monkeypatch):
    from astrodash_core import reader_dispatch as reading

    monkeypatch.setattr(reading, "MAX_DECOMPRESSED_BYTES", 1 << 20)
    bomb = gzip.compress(b"0" * (2 << 20))
    with pytest.raises(SpectrumReadError, match="bomb.dat.gz: gzip content expands to more than"):
        ad.read_spectrum(bomb, filename="bomb.dat.gz")


@pytest.mark.parametrize("card, bad, name", [
    # NAXIS = 2147483647 kept astropy's header parsing busy for hours (the campaign's one hang)
    (b"NAXIS   =                    1", b"NAXIS   =           2147483647", "NAXIS = 2147483647"),
    # NAXIS1 = -906 made astropy read the primary HDU at offset 0 again and again (a hypothesis-built header)
    (b"NAXIS1  =                  600", b"NAXIS1  =                 -906", "NAXIS1 = -906"),
    # BITPIX = -271176 made astropy allocate 680 MB before failing (the 100,000-input campaign, seed 5)
    (b"BITPIX  =                  -64", b"BITPIX  =              -271176", "BITPIX = -271176"),
])
def test_fits_header_with_absurd_axes_is_refused_before_astropy_loops_over_them(card, bad, name):
    from astropy.io import fits

    buf = io.BytesIO()
    fits.PrimaryHDU(np.ones(600)).writeto(buf)
    data = buf.getvalue().replace(card, bad)
    with pytest.raises(SpectrumReadError, match=rf"axes.fits: invalid FITS header: {name}"):
        ad.read_spectrum(data, filename="axes.fits")


def test_table_with_old_mac_line_ends_is_counted_too():
    # the campaign's slow/memory case: 11.5 million CR-terminated rows (320 MB), once copied whole by strip()
    data = b"4000 1\r" * (MAX_POINTS + 1)
    with pytest.raises(SpectrumReadError, match="cr.dat: more than 1,000,000 lines"):
        ad.read_spectrum(data, filename="cr.dat")


def test_json_with_a_flood_of_tiny_spectra_is_refused_before_parsing():
    one = b'{"data":[[4000,1],[4001,2]]}'
    doc = b'{"SN":{"spectra":[' + b",".join([one] * 5000) + b"]}}"
    with pytest.raises(SpectrumReadError, match="flood.json: JSON holds more than 1,000 spectra"):
        ad.read_spectrum(doc, filename="flood.json")


def test_duplicate_rows_with_the_smallest_error_keep_a_positive_error():
    # two rows at one wavelength with error 5e-324 averaged to an error of 0 (the campaign's invalid spectrum)
    rows = [f"{4000 + k} 1.0 0.1" for k in range(1, 15)] + ["4000 1.0 5e-324", "4000 1.0 5e-324"]
    s = ad.read_spectrum(_table(rows), filename="tiny.dat")
    assert s.error[0] > 0
