# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Cython text-table parser: numeric rows of an ASCII/CSV spectrum file, in one pass over the bytes.

A line is a data row when its first two fields are numbers.  Fields are separated by any run of spaces, tabs,
commas or semicolons (so whitespace-aligned, tab, comma and semicolon tables all parse); lines starting with
``#`` or ``%`` are comments; any other line (a text header, a unit line) is skipped and counted.  Fortran ``D``
exponents (``1.5D+03``) are accepted; ``nan``/``inf`` parse to NaN/inf (the Spectrum drops them).  Parsing of
a row stops at the first field that is not a number or after ``max_cols`` fields, so trailing junk columns
are ignored.

Numbers take a fast exact path (see ``_field``); anything else goes through C ``strtod``, so every value is
the correctly rounded double that ``float()`` or ``numpy.loadtxt`` would give.
"""
import numpy as np
cimport numpy as cnp
from libc.math cimport NAN
from libc.stdlib cimport strtod
from libc.string cimport memcpy

cnp.import_array()

cdef extern from "float.h":
    int LDBL_MANT_DIG

#: The long-double path needs the x87 80-bit format (64-bit mantissa stored first); elsewhere strtod decides.
cdef bint _X87 = LDBL_MANT_DIG == 64 and sizeof(long double) >= 10

cdef long double[28] _POW10
cdef double[23] _POW10D  # the same as doubles for Clinger's path: no x87 load and store per number
cdef unsigned char[256] _SEP
cdef int _k
_POW10[0] = 1.0
for _k in range(1, 28):
    _POW10[_k] = _POW10[_k - 1] * 10  # exact in 80-bit long double up to 10**27
for _k in range(23):
    _POW10D[_k] = <double>_POW10[_k]  # exact: 10**22 is the largest power of ten a double holds exactly
for _k in range(256):
    _SEP[_k] = _k in (32, 9, 44, 59, 13, 11, 12)


cdef inline bint _slow(const unsigned char* p, Py_ssize_t n, double* out) noexcept nogil:
    """strtod on a copy of the field with Fortran D/d exponents turned into E; True when all of it parsed."""
    cdef char buf[128]
    cdef char* end
    cdef Py_ssize_t k
    if n >= 127:
        return False
    memcpy(buf, p, n)
    for k in range(n):
        if buf[k] == 68 or buf[k] == 100:  # 'D', 'd'
            buf[k] = 69
    buf[n] = 0
    out[0] = strtod(buf, &end)
    return end == buf + n


cdef inline Py_ssize_t _field_end(const unsigned char* b, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    while i < n and b[i] != 10 and not _SEP[b[i]]:
        i += 1
    return i


cdef inline Py_ssize_t _digit_run(const unsigned char* b, Py_ssize_t i, Py_ssize_t n, unsigned long long* mant,
                                  int* digits, int* count) noexcept nogil:
    """Read the run of ASCII digits at b[i] into ``mant`` (``digits`` counts its significant digits, ``count``
    every digit read); return the index after the run, or -1 when there are more than 19 significant digits."""
    cdef unsigned char c
    while i < n:
        c = b[i] - 48
        if c > 9:
            break
        count[0] += 1
        if mant[0] != 0 or c != 0:
            if digits[0] >= 19:
                return -1
            mant[0] = mant[0] * 10 + c
            digits[0] += 1
        i += 1
    return i


cdef inline Py_ssize_t _number(const unsigned char* b, Py_ssize_t i, Py_ssize_t n, double* out) noexcept nogil:
    """Parse the field starting at b[i] into out; return the index just past it, or -1 if it is not a number.

    One pass over the characters.  Fast path: up to 19 significant digits; Clinger's exact double path
    when it applies, else 80-bit long double arithmetic (powers of ten up to 54 either way, at most two
    roundings); the result is rounded to double unless it lies within a few long-double ulps of a halfway
    point between doubles, where strtod decides.  So every value is the correctly rounded double.
    """
    cdef Py_ssize_t s = i, end
    cdef bint neg = False
    cdef unsigned long long mant = 0, low = 0
    cdef int digits = 0, frac = 0, exp10 = 0, esign = 1, edigits = 0, count = 0, before
    cdef bint any_digit
    cdef unsigned char c
    cdef long double r
    if i < n and (b[i] == 45 or b[i] == 43):  # '-', '+'
        neg = b[i] == 45
        i += 1
    i = _digit_run(b, i, n, &mant, &digits, &count)
    if i >= 0 and i < n and b[i] == 46:  # '.'
        before = count
        i = _digit_run(b, i + 1, n, &mant, &digits, &count)
        frac = count - before
    if i < 0:  # more than 19 significant digits: strtod decides
        end = _field_end(b, s, n)
        return end if _slow(b + s, end - s, out) else -1
    any_digit = count > 0
    if not any_digit:  # nan, inf, or not a number at all
        end = _field_end(b, s, n)
        return end if end > s and _slow(b + s, end - s, out) else -1
    if i < n:
        c = b[i]
        if c == 101 or c == 69 or c == 100 or c == 68:  # e E d D
            i += 1
            if i < n and (b[i] == 45 or b[i] == 43):
                if b[i] == 45:
                    esign = -1
                i += 1
            while i < n and 48 <= b[i] <= 57:
                if edigits < 6:
                    exp10 = exp10 * 10 + (b[i] - 48)
                edigits += 1
                i += 1
            if edigits == 0:
                return -1
    if i < n and b[i] != 10 and not _SEP[b[i]]:
        return -1  # trailing characters: not a number
    exp10 = esign * exp10 - frac
    if mant == 0:
        out[0] = -0.0 if neg else 0.0
        return i
    if mant < 9007199254740992ULL and -22 <= exp10 <= 22:
        # Clinger's fast path: both operands exact doubles, one correctly rounded operation
        if exp10 >= 0:
            out[0] = <double>mant * _POW10D[exp10]
        else:
            out[0] = <double>mant / _POW10D[-exp10]
        if neg:
            out[0] = -out[0]
        return i
    if _X87 and -54 <= exp10 <= 54:
        # at most two roundings of 80-bit arithmetic (relative error < 1.5 long-double ulp)
        r = <long double>mant
        if exp10 >= 0:
            if exp10 > 27:
                r = r * _POW10[27]
                exp10 -= 27
            r = r * _POW10[exp10]
        else:
            if exp10 < -27:
                r = r / _POW10[27]
                exp10 += 27
            r = r / _POW10[-exp10]
        memcpy(&low, &r, 8)  # the 64-bit mantissa; its low 11 bits are what rounding to double drops
        low = low & 0x7FF
        if (low < 0x3FC or low > 0x404) and low > 4 and low < 0x7FB and <double>r != 0 and \
                r < <long double>1.7e308 and r > <long double>2.3e-308:
            out[0] = <double>r
            if neg:
                out[0] = -out[0]
            return i
    return i if _slow(b + s, i - s, out) else -1


def parse_table(const unsigned char[::1] data, int max_cols=3):
    """Parse the numeric rows of a text table.

    Returns ``(values, counts, skipped)``: float64 ``[rows, max_cols]`` (NaN where a row had fewer fields),
    int32 ``[rows]`` the number of numeric fields read from each row (2..max_cols), and the number of
    non-comment, non-blank lines that were not data rows (headers, text).
    """
    cdef Py_ssize_t n = data.shape[0]
    cdef Py_ssize_t cap = 1, i, start, row = 0, k
    cdef int col, skipped = 0
    cdef unsigned char c
    cdef double v
    if max_cols < 2 or max_cols > 256:
        raise ValueError("max_cols must be between 2 and 256")
    cdef const unsigned char* b0 = &data[0] if n > 0 else NULL
    cdef Py_ssize_t newlines = 0
    with nogil:  # count lines: a branch-free loop the compiler vectorises (memchr per short line is slower)
        for i in range(n):
            newlines += b0[i] == 10
    cap += newlines
    out = np.empty((cap, max_cols), dtype=np.float64)
    counts = np.zeros(cap, dtype=np.int32)
    cdef double[:, ::1] ov = out
    cdef int[::1] cv = counts
    cdef const unsigned char* b = &data[0] if n > 0 else NULL
    i = 0
    with nogil:
        while i < n:
            # skip leading separators of the line
            while i < n and b[i] != 10 and _SEP[b[i]]:
                i += 1
            if i >= n:
                break
            c = b[i]
            if c == 10:
                i += 1
                continue
            if c == 35 or c == 37:  # '#', '%': comment line
                while i < n and b[i] != 10:
                    i += 1
                continue
            col = 0
            while i < n and b[i] != 10 and col < max_cols:
                start = _number(b, i, n, &v)
                if start < 0:
                    break
                i = start
                ov[row, col] = v  # straight into the output: a row that turns out not to be data is overwritten
                col += 1
                while i < n and b[i] != 10 and _SEP[b[i]]:
                    i += 1
            if col >= 2:
                for k in range(col, max_cols):
                    ov[row, k] = NAN
                cv[row] = col
                row += 1
            else:
                skipped += 1
            while i < n and b[i] != 10:
                i += 1
    return out[:row], counts[:row], skipped
