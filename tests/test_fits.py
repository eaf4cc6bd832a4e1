"""FITS spectra read through astropy: WCS, units, compression, extensions, survey tables, specutils files.

Every file is written here by astropy (or specutils) and the arrays read back are compared with the arrays
written, converted with formulas written out in the test (not with the reader's own helpers)."""
import gzip
import io
import warnings

import numpy as np
import pytest

import astrodash_core as ad
from astrodash_core import SpectrumReadError

fits = pytest.importorskip("astropy.io.fits")

C_ANGSTROM_PER_S = 2.99792458e18


def _bytes(hdul) -> bytes:
    buf = io.BytesIO()
    hdul.writeto(buf)
    return buf.getvalue()


def _image(flux, **cards):
    h = fits.PrimaryHDU(np.asarray(flux, dtype=np.float64))
    h.header.update(cards)
    return fits.HDUList([h])


# ---- WCS ------------------------------------------------------------------------------------------------

def test_wave_log_axis_follows_the_fits_standard_not_a_double_exponential():
    # FITS WCS paper III: CTYPE1 = 'WAVE-LOG', CRVAL1 is the wavelength itself, w = CRVAL exp(CDELT (p - CRPIX) / CRVAL)
    n, crval, cdelt, crpix = 400, 4000.0, 0.8, 1.0
    s = ad.read_spectrum(_bytes(_image(np.ones(n), CTYPE1="WAVE-LOG", CRVAL1=crval, CDELT1=cdelt, CRPIX1=crpix,
                                       CUNIT1="Angstrom")), filename="log.fits")
    pix = np.arange(1, n + 1)
    expected = crval * np.exp(cdelt * (pix - crpix) / crval)
    np.testing.assert_allclose(s.wave, expected, rtol=1e-10)
    assert np.isfinite(s.wave).all()


def test_wave_log_axis_in_metres_with_reference_pixel_in_the_middle():
    n, crval, cdelt, crpix = 300, 6.5e-7, 1.2e-10, 150.5
    s = ad.read_spectrum(_bytes(_image(np.ones(n), CTYPE1="WAVE-LOG", CRVAL1=crval, CDELT1=cdelt, CRPIX1=crpix,
                                       CUNIT1="m")), filename="logm.fits")
    pix = np.arange(1, n + 1)
    np.testing.assert_allclose(s.wave, 1e10 * crval * np.exp(cdelt * (pix - crpix) / crval), rtol=1e-10)


def test_iraf_log10_dispersion_still_reads():
    h = _image(np.ones(300), CRVAL1=np.log10(4000.0), CD1_1=1e-4, CRPIX1=1.0, **{"DC-FLAG": 1})
    s = ad.read_spectrum(_bytes(h), filename="iraf.fits")
    np.testing.assert_allclose(s.wave, 10 ** (np.log10(4000.0) + 1e-4 * np.arange(300)), rtol=1e-12)


@pytest.mark.parametrize("cunit,scale", [("nm", 10.0), ("um", 1e4), ("micron", 1e4), ("Angstrom", 1.0),
                                         ("0.1 nm", 1.0), ("m", 1e10)])
def test_linear_wavelength_axis_units(cunit, scale):
    n = 200
    crval = {"nm": 400.0, "um": 0.4, "micron": 0.4, "Angstrom": 4000.0, "0.1 nm": 4000.0, "m": 4e-7}[cunit]
    cdelt = crval / 2000
    s = ad.read_spectrum(_bytes(_image(np.ones(n), CTYPE1="WAVE", CRVAL1=crval, CDELT1=cdelt, CRPIX1=1.0,
                                       CUNIT1=cunit)), filename="u.fits")
    np.testing.assert_allclose(s.wave, scale * (crval + cdelt * np.arange(n)), rtol=1e-10)


def test_frequency_axis_becomes_wavelength_and_f_nu_becomes_f_lambda():
    n = 250
    nu = 4.0e14 + 1.0e12 * np.arange(n)        # 750 nm down to ~ 460 nm
    fnu = 1e-26 * (1.0 + np.arange(n) / n)      # erg/s/cm2/Hz
    h = _image(fnu, CTYPE1="FREQ", CRVAL1=nu[0], CDELT1=1.0e12, CRPIX1=1.0, CUNIT1="Hz", BUNIT="erg/s/cm2/Hz")
    s = ad.read_spectrum(_bytes(h), filename="freq.fits")
    lam = C_ANGSTROM_PER_S / nu
    order = np.argsort(lam)
    np.testing.assert_allclose(s.wave, lam[order], rtol=1e-10)
    np.testing.assert_allclose(s.flux, (fnu * C_ANGSTROM_PER_S / lam ** 2)[order], rtol=1e-8)
    assert "converted from erg/s/cm2/Hz" in s.meta["flux_unit"]


def test_flux_in_jansky_in_a_table_converts_to_f_lambda():
    from astropy.table import Table

    lam = np.linspace(4000, 8000, 100)
    t = Table({"wavelength": lam, "flux": np.full(100, 2.0)})
    t["wavelength"].unit, t["flux"].unit = "Angstrom", "mJy"
    s = ad.read_spectrum(_bytes(fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU(t)])), filename="jy.fits")
    np.testing.assert_allclose(s.flux, 2.0e-26 * C_ANGSTROM_PER_S / lam ** 2, rtol=1e-8)


def test_per_angstrom_flux_keeps_its_values_and_unit_string():
    h = _image(np.linspace(1, 2, 100), CRVAL1=4000.0, CDELT1=2.0, BUNIT="erg/s/cm2/A")
    s = ad.read_spectrum(_bytes(h), filename="fl.fits")
    np.testing.assert_allclose(s.flux, np.linspace(1, 2, 100))
    assert s.meta["flux_unit"] == "erg/s/cm2/A"


def test_velocity_axis_is_a_clear_error():
    h = _image(np.ones(100), CTYPE1="VRAD", CRVAL1=0.0, CDELT1=1000.0, CUNIT1="m/s")
    with pytest.raises(SpectrumReadError, match="vel.fits.*not a wavelength"):
        ad.read_spectrum(_bytes(h), filename="vel.fits")


# ---- compression ------------------------------------------------------------------------------------------

def _linear(n=150):
    return _image(np.arange(1, n + 1, dtype=float), CTYPE1="WAVE", CRVAL1=4000.0, CDELT1=4.0, CRPIX1=1.0,
                  CUNIT1="Angstrom")


def test_gzipped_fits_is_read_by_suffix_path_and_sniffing(tmp_path):
    data = gzip.compress(_bytes(_linear()))
    path = tmp_path / "spec.fits.gz"
    path.write_bytes(data)
    for source, name in ((path, None), (data, "spec.fits.gz"), (data, "upload")):
        s = ad.read_spectrum(source, filename=name)
        assert s.meta["format"] == "fits"
        np.testing.assert_allclose(s.wave, 4000.0 + 4.0 * np.arange(150))
        np.testing.assert_allclose(s.flux, np.arange(1, 151))


def test_gzipped_text_table_is_read_too():
    rows = "\n".join(f"{4000 + 5 * k} {1 + k * 0.01}" for k in range(50)).encode()
    s = ad.read_spectrum(gzip.compress(rows), filename="s.dat.gz")
    assert s.meta["format"] == "ascii" and len(s) == 50


def test_truncated_gzip_is_a_read_error_naming_the_file():
    data = gzip.compress(_bytes(_linear()))[:200]
    with pytest.raises(SpectrumReadError, match="cut.fits.gz"):
        ad.read_spectrum(data, filename="cut.fits.gz")


def test_tile_compressed_fz_is_read(tmp_path):
    flux = np.linspace(1.0, 3.0, 256).astype(np.float32)
    comp = fits.CompImageHDU(flux, compression_type="GZIP_1")
    comp.header.update(CTYPE1="WAVE", CRVAL1=5000.0, CDELT1=2.0, CRPIX1=1.0, CUNIT1="Angstrom")
    path = tmp_path / "spec.fits.fz"
    fits.HDUList([fits.PrimaryHDU(), comp]).writeto(path)
    s = ad.read_spectrum(path)
    np.testing.assert_allclose(s.wave, 5000.0 + 2.0 * np.arange(256))
    np.testing.assert_allclose(s.flux, flux, rtol=1e-6)


# ---- extensions -------------------------------------------------------------------------------------------

def test_spectrum_in_an_extension_behind_a_primary_image_without_a_spectral_axis():
    acq = fits.PrimaryHDU(np.ones((20, 20)))          # an acquisition image: no CRVAL1
    sci = fits.ImageHDU(np.linspace(1, 2, 120), name="SCI")
    sci.header.update(CTYPE1="AWAV", CRVAL1=3.8e-7, CDELT1=5e-10, CRPIX1=1.0, CUNIT1="m")
    err = fits.ImageHDU(np.full(120, 0.05), name="ERR")
    s = ad.read_spectrum(_bytes(fits.HDUList([acq, sci, err])), filename="mef.fits")
    np.testing.assert_allclose(s.wave, 3800.0 + 5.0 * np.arange(120), rtol=1e-10)
    np.testing.assert_allclose(s.flux, np.linspace(1, 2, 120))
    np.testing.assert_allclose(s.error, 0.05)
    assert s.meta["hdu"] == "SCI"


def test_table_in_a_later_extension_after_an_unrelated_table():
    from astropy.table import Table

    other = fits.BinTableHDU(Table({"TARGET": ["a", "b"], "RA": [1.0, 2.0]}), name="TARGETS")
    t = Table({"WAVE": np.linspace(3500, 9000, 90), "FLUX": np.ones(90)})
    s = ad.read_spectrum(_bytes(fits.HDUList([fits.PrimaryHDU(), other, fits.BinTableHDU(t, name="SPEC")])),
                         filename="two.fits")
    np.testing.assert_allclose(s.wave, np.linspace(3500, 9000, 90))


def test_no_spectrum_anywhere_names_what_was_found():
    from astropy.table import Table

    hdul = fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU(Table({"A": [1.0], "B": [2.0]}), name="JUNK")])
    with pytest.raises(SpectrumReadError, match="junk.fits.*JUNK"):
        ad.read_spectrum(_bytes(hdul), filename="junk.fits")


# ---- survey layouts ---------------------------------------------------------------------------------------

def _sdss(n=500):
    from astropy.table import Table

    loglam = 3.5798 + 1e-4 * np.arange(n)
    flux = 10.0 + np.sin(np.arange(n) / 20.0)
    ivar = np.full(n, 4.0)
    ivar[[10, 20]] = 0.0                            # masked pixels
    coadd = Table({"flux": flux.astype(np.float32), "loglam": loglam.astype(np.float32),
                   "ivar": ivar.astype(np.float32), "and_mask": np.zeros(n, np.int32),
                   "sky": np.ones(n, np.float32), "model": flux.astype(np.float32)})
    primary = fits.PrimaryHDU()
    primary.header.update(BUNIT="1E-17 erg/cm^2/s/Ang", PLUG_RA=10.0)
    specobj = Table({"PLATE": [1], "Z": [0.0321], "CLASS": ["GALAXY"]})
    return (fits.HDUList([primary, fits.BinTableHDU(coadd, name="COADD"), fits.BinTableHDU(specobj, name="SPECOBJ")]),
            loglam.astype(np.float32), flux.astype(np.float32), ivar.astype(np.float32))


def test_sdss_spec_file_loglam_flux_ivar_and_specobj_redshift():
    hdul, loglam, flux, ivar = _sdss()
    s = ad.read_spectrum(_bytes(hdul), filename="spec-1234-56789-0001.fits")
    np.testing.assert_allclose(s.wave, 10.0 ** loglam.astype(np.float64), rtol=1e-12)
    np.testing.assert_allclose(s.flux, flux, rtol=1e-6)      # per Å already: a constant scale, values kept
    expected_err = np.where(ivar > 0, 1 / np.sqrt(np.where(ivar > 0, ivar, 1)), np.nan)
    np.testing.assert_allclose(s.error, expected_err, rtol=1e-6)
    assert np.isnan(s.error[10]) and np.isnan(s.error[20])
    assert s.redshift == pytest.approx(0.0321)


def test_desi_style_camera_images_every_target_all_cameras():
    n_t = 3
    hdus = [fits.PrimaryHDU()]
    expect_wave, expect_flux = [], [[] for _ in range(n_t)]
    for cam, lo, hi in (("B", 3600.0, 5900.0), ("R", 5760.0, 7620.0), ("Z", 7520.0, 9824.0)):
        w = np.arange(lo, hi, 0.8)
        f = np.vstack([np.full(w.size, 1.0 + t) + w / 1e4 for t in range(n_t)])
        iv = np.full_like(f, 25.0)
        hdus += [fits.ImageHDU(w, name=f"{cam}_WAVELENGTH"), fits.ImageHDU(f, name=f"{cam}_FLUX"),
                 fits.ImageHDU(iv, name=f"{cam}_IVAR")]
        hdus[-3].header["BUNIT"] = "Angstrom"
        hdus[-2].header["BUNIT"] = "10**-17 erg/(s cm2 Angstrom)"
        expect_wave.append(w)
        for t in range(n_t):
            expect_flux[t].append(f[t])
    spectra = ad.read_spectra(_bytes(fits.HDUList(hdus)), filename="coadd-desi.fits")
    assert len(spectra) == n_t
    wave = np.concatenate(expect_wave)
    for t, s in enumerate(spectra):
        flux = np.concatenate(expect_flux[t])
        # overlapping camera pixels are merged by the Spectrum (sorted; equal wavelengths averaged)
        assert s.wave[0] == pytest.approx(wave.min()) and s.wave[-1] == pytest.approx(wave.max())
        np.testing.assert_allclose(np.interp(wave, s.wave, s.flux), flux, rtol=1e-9)
        np.testing.assert_allclose(s.error, 0.2)


# ---- specutils ----------------------------------------------------------------------------------------------

def test_specutils_tabular_fits_round_trip(tmp_path):
    specutils = pytest.importorskip("specutils")
    Spectrum = getattr(specutils, "Spectrum", None) or specutils.Spectrum1D
    import astropy.units as u
    from astropy.nddata import StdDevUncertainty

    lam = np.linspace(0.35, 0.95, 300)  # µm
    flux = 1.0 + lam
    spec = Spectrum(spectral_axis=lam * u.um, flux=flux * u.Unit("erg / (s cm2 AA)"),
                              uncertainty=StdDevUncertainty(np.full(300, 0.1)))
    path = tmp_path / "tab.fits"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spec.write(path, format="tabular-fits")
    s = ad.read_spectrum(path)
    np.testing.assert_allclose(s.wave, lam * 1e4, rtol=1e-12)
    np.testing.assert_allclose(s.flux, flux)
    np.testing.assert_allclose(s.error, 0.1)


@pytest.mark.parametrize("ctype", ["WAVE", "WAVE-LOG"])
def test_specutils_wcs1d_fits_round_trip(tmp_path, ctype):
    specutils = pytest.importorskip("specutils")
    Spectrum = getattr(specutils, "Spectrum", None) or specutils.Spectrum1D
    import astropy.units as u
    from astropy.wcs import WCS

    wcs = WCS(header={"CTYPE1": ctype, "CRVAL1": 4200.0, "CDELT1": 1.5, "CRPIX1": 1.0, "CUNIT1": "Angstrom"})
    flux = np.linspace(2.0, 3.0, 400)
    spec = Spectrum(flux=flux * u.Unit("erg / (s cm2 AA)"), wcs=wcs)
    path = tmp_path / f"wcs_{ctype}.fits"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spec.write(path, format="wcs1d-fits")
        expected = spec.spectral_axis.to_value(u.AA)
    s = ad.read_spectrum(path)
    np.testing.assert_allclose(s.wave, expected, rtol=1e-10)
    np.testing.assert_allclose(s.flux, flux)
