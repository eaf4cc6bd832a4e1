# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Cython text-table parser: numeric rows of an ASCII/CSV spectrum file, in one pass over the bytes.

A line is a data row when its first two fields are numbers.  Fields are separated by any run of spaces, tabs,
commas or semicolons (so whitespace-aligned, tab, comma and semicolon tables all parse); lines starting with
``#`` or ``%`` are comments; any other line (a text header, a unit line) is skipped and counted.  Fortran ``D``
exponents (``1.5D+03``) are accepted; ``nan``/``inf`` parse to NaN/inf (the Spectrum drops them).  Parsing of
a row stops at the first field that is not a number or after ``max_cols`` fields, so trailing junk columns
are ignored.

Numbers take fast exact paths (see ``_number``); anything else goes through C ``strtod``, so every value is
the correctly rounded double that ``float()`` or ``numpy.loadtxt`` would give.
"""
import numpy as np
cimport numpy as cnp
from libc.math cimport NAN
from libc.stdlib cimport calloc, free, malloc, strtod
from libc.string cimport memchr, memcpy
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.pycapsule cimport PyCapsule_GetPointer, PyCapsule_New

cnp.import_array()

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    /* Eisel-Lemire (Lemire 2021, "Number parsing at a gigabyte per second"): the double nearest to
       w * 10**q from a 128-bit truncated power of five.  Returns 0 in the rare case the truncation leaves
       the rounding undecided (then strtod decides), else 1 with *out set. */
    static inline int astrodash_eisel_lemire(int64_t q, uint64_t w, int neg, const uint64_t *pow5, double *out) {
        uint64_t bits, mantissa, hi, lo;
        unsigned __int128 p1, p2;
        int lz, upper, shift;
        int64_t power2;
        if (q < -342) { bits = 0; goto done; }
        if (q > 308) { bits = (uint64_t)0x7FF << 52; goto done; }
        lz = __builtin_clzll(w);
        w <<= lz;
        p1 = (unsigned __int128)w * pow5[2 * (q + 342)];
        hi = (uint64_t)(p1 >> 64);
        lo = (uint64_t)p1;
        if ((hi & 0x1FF) == 0x1FF) {  /* the low bits may carry: add the next 64 bits of the power */
            p2 = (unsigned __int128)w * pow5[2 * (q + 342) + 1];
            uint64_t add = (uint64_t)(p2 >> 64);
            lo += add;
            if (add > lo) hi++;
            if (lo == UINT64_MAX && (q < -27 || q > 55)) return 0;
        }
        upper = (int)(hi >> 63);
        shift = upper + 64 - 52 - 3;
        mantissa = hi >> shift;
        power2 = (((152170 + 65536) * q) >> 16) + 63 + upper - lz + 1023;
        if (power2 <= 0) {  /* subnormal */
            if (-power2 + 1 >= 64) { bits = 0; goto done; }
            mantissa >>= -power2 + 1;
            mantissa += mantissa & 1;
            mantissa >>= 1;
            power2 = mantissa < ((uint64_t)1 << 52) ? 0 : 1;
            bits = mantissa | ((uint64_t)power2 << 52);
            goto done;
        }
        if (lo <= 1 && q >= -4 && q <= 23 && (mantissa & 3) == 1 && (mantissa << shift) == hi)
            mantissa &= ~(uint64_t)1;  /* exactly halfway: round to even */
        mantissa += mantissa & 1;
        mantissa >>= 1;
        if (mantissa >= ((uint64_t)2 << 52)) { mantissa = (uint64_t)1 << 52; power2++; }
        mantissa &= ~((uint64_t)1 << 52);
        if (power2 >= 0x7FF) { power2 = 0x7FF; mantissa = 0; }
        bits = mantissa | ((uint64_t)power2 << 52);
    done:
        bits |= (uint64_t)(neg != 0) << 63;
        memcpy(out, &bits, 8);
        return 1;
    }
    """
    bint _eisel_lemire "astrodash_eisel_lemire"(long long q, unsigned long long w, int neg,
                                                const unsigned long long* pow5, double* out) noexcept nogil


cdef extern from *:
    """
    /* x with its sign bit set when neg (x >= 0 here, so this is -x), without a branch. */
    static inline double astrodash_with_sign(double x, int neg) {
        uint64_t bits;
        memcpy(&bits, &x, 8);
        bits |= (uint64_t)neg << 63;
        memcpy(&x, &bits, 8);
        return x;
    }
    """
    double _with_sign "astrodash_with_sign"(double x, int neg) noexcept nogil

cdef double[23] _POW10D  # 10**0..10**22: the powers of ten a double holds exactly (Clinger's path)
cdef unsigned long long[2 * 651] _POW5  # 5**q for q = -342..308 as 128-bit truncated mantissas (Eisel-Lemire)
cdef unsigned char[256] _SEP
cdef int _k


def _power_of_five_128(q):
    """The 128-bit mantissa of 5**q with its top bit set: truncated for q >= 0; for q < 0 the reciprocal,
    rounded up (from the construction in Lemire 2021)."""

    if q >= 0:
        p = 5 ** q
        shift = 128 - p.bit_length()
        return p << shift if shift >= 0 else p >> -shift
    p = 5 ** -q
    z = (p - 1).bit_length()  # smallest z with 2**z >= p
    c = (1 << (z + 127 if q >= -27 else 2 * z + 128)) // p + 1
    return c >> max(0, c.bit_length() - 128)


for _k in range(23):
    _POW10D[_k] = float(10 ** _k)
for _k in range(-342, 309):
    _c = _power_of_five_128(_k)
    _POW5[2 * (_k + 342)] = _c >> 64
    _POW5[2 * (_k + 342) + 1] = _c & 0xFFFFFFFFFFFFFFFF
for _k in range(256):
    _SEP[_k] = _k in (32, 9, 44, 59, 13, 11, 12)


cdef bint _slow(const unsigned char* p, Py_ssize_t n, double* out) noexcept nogil:
    """strtod on a copy of the field with Fortran D/d exponents turned into E; True when all of it parsed."""
    cdef char small[128]
    cdef char* buf = small
    cdef char* end
    cdef Py_ssize_t k
    cdef bint ok
    if n >= 128:  # a very long field (e.g. 300 digits): a buffer of its own
        buf = <char*>malloc(n + 1)
        if buf == NULL:
            return False
    memcpy(buf, p, n)
    for k in range(n):
        if buf[k] == 68 or buf[k] == 100:  # 'D', 'd'
            buf[k] = 69
    buf[n] = 0
    out[0] = strtod(buf, &end)
    ok = end == buf + n
    if buf != small:
        free(buf)
    return ok


cdef inline Py_ssize_t _field_end(const unsigned char* b, Py_ssize_t i) noexcept nogil:
    while b[i] != 10 and not _SEP[b[i]]:
        i += 1
    return i


cdef inline Py_ssize_t _number(const unsigned char* b, Py_ssize_t i, double* out) noexcept nogil:
    """Parse the field starting at b[i] into out; return the index just past it, or -1 if it is not a number.

    The text ends with a newline (see ``_parse_lines``), so no scan needs a bounds check.  One pass over the
    characters.  Up to 19 digits: Clinger's exact double path when it applies, else Eisel-Lemire's 128-bit
    product (strtod in the rare case it cannot decide the rounding).  More digits, nan and inf: strtod.  So
    every value is the correctly rounded double.
    """
    cdef Py_ssize_t s = i, p
    cdef int neg = b[i] == 45
    cdef unsigned long long mant = 0
    cdef int digits, frac = 0, exp10 = 0, esign = 1
    cdef unsigned int c
    i += neg | (b[i] == 43)  # '-', '+'
    p = i
    c = b[i] - 48
    while c <= 9:  # no overflow check per digit: more than 19 digits go to strtod below
        mant = mant * 10 + c
        i += 1
        c = b[i] - 48
    digits = <int>(i - p)
    if b[i] == 46:  # '.'
        i += 1
        p = i
        c = b[i] - 48
        while c <= 9:
            mant = mant * 10 + c
            i += 1
            c = b[i] - 48
        frac = <int>(i - p)
        digits += frac
    if digits == 0 and (b[i] | 32) != 110 and (b[i] | 32) != 105:  # neither a digit nor n(an) / i(nf)
        return -1
    if digits == 0 or digits > 19:  # nan, inf, or too many digits: strtod decides
        i = _field_end(b, s)
        return i if i > s and _slow(b + s, i - s, out) else -1
    c = b[i]
    if c == 101 or c == 69 or c == 100 or c == 68:  # e E d D
        i += 1
        if b[i] == 45:
            esign = -1
            i += 1
        elif b[i] == 43:
            i += 1
        p = i
        c = b[i] - 48
        while c <= 9:
            if exp10 < 100000:  # a larger exponent over- or underflows anyway; leading zeros are fine
                exp10 = exp10 * 10 + <int>c
            i += 1
            c = b[i] - 48
        if i == p:
            return -1
    if b[i] != 10 and not _SEP[b[i]]:
        return -1  # trailing characters: not a number
    exp10 = esign * exp10 - frac
    if mant == 0:
        out[0] = -0.0 if neg else 0.0
        return i
    if mant < 9007199254740992ULL and -22 <= exp10 <= 22:
        # Clinger's fast path: both operands exact doubles, one correctly rounded operation (the other one is
        # by 1.0, exact), without a branch on the exponent's sign; the sign is set as a bit, without a branch
        # on the (in noisy fluxes random) sign either
        out[0] = _with_sign(<double><long long>mant * _POW10D[exp10 if exp10 > 0 else 0]
                            / _POW10D[-exp10 if exp10 < 0 else 0], neg)
        return i
    if _eisel_lemire(exp10, mant, neg, _POW5, out):
        return i
    return i if _slow(b + s, i - s, out) else -1


cdef Py_ssize_t _count_newlines(const unsigned char* b, Py_ssize_t n) noexcept nogil:
    """Newlines in b[0:n]: byte-wide counts over blocks of 255 bytes, a loop the compiler vectorises with
    byte lanes (a 64-bit counter per byte was ~4x slower; memchr per short line slower still)."""
    cdef Py_ssize_t total = 0, start = 0, i, end
    cdef unsigned char block
    while start < n:
        end = start + 255 if n - start > 255 else n
        block = 0
        for i in range(start, end):
            block += b[i] == 10
        total += block
        start = end
    return total


cdef inline Py_ssize_t _line_end(const unsigned char* b, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    """Index of the newline that ends the line containing b[i] (b[n - 1] is one): memchr, not a byte loop,
    for long comment and header lines."""
    return <const unsigned char*>memchr(b + i, 10, n - i) - b


cdef Py_ssize_t _parse_lines(const unsigned char* b, Py_ssize_t n, double* ov, int* cv, Py_ssize_t row,
                             int max_cols, int* skipped) noexcept nogil:
    """Parse the rows of b[0:n], which ends with a newline, into ``ov``/``cv`` from ``row`` on; return the new
    row count.  Every scan stops at a newline, so none needs a bounds check."""
    cdef Py_ssize_t i = 0, j
    cdef int col, k
    cdef unsigned char c
    cdef double* out
    while i < n:
        while _SEP[b[i]]:  # leading separators (a newline is not one)
            i += 1
        c = b[i]
        if c == 35 or c == 37:  # '#', '%': comment line
            i = _line_end(b, i, n)
        elif c != 10:
            out = ov + row * max_cols  # straight into the output: a row that is not data is overwritten
            col = 0
            while col < max_cols:
                j = _number(b, i, out + col)
                if j < 0:
                    break
                col += 1
                i = j
                while _SEP[b[i]]:
                    i += 1
                if b[i] == 10:
                    break
            if col >= 2:
                for k in range(col, max_cols):
                    out[k] = NAN
                cv[row] = col
                row += 1
            else:
                skipped[0] += 1
            if b[i] != 10:
                i = _line_end(b, i, n)
        i += 1
    return row


cdef Py_ssize_t _last_newline(const unsigned char* b, Py_ssize_t n) noexcept nogil:
    """Index of the last newline of b[0:n], or -1 when there is none."""
    cdef Py_ssize_t last = n - 1
    while last >= 0 and b[last] != 10:
        last -= 1
    return last


cdef Py_ssize_t _parse_text(const unsigned char* b, Py_ssize_t n, double* ov, int* cv, int max_cols,
                            int* skipped) noexcept nogil:
    """The rows of the whole text b[0:n] into ``ov``/``cv`` (room for its newlines + 1 rows); return the row
    count, or -1 when memory for the text after the last newline ran out.  That text, when there is any, is
    parsed from a copy that ends with a newline."""
    cdef Py_ssize_t last = _last_newline(b, n), row
    cdef unsigned char* tail = NULL
    if last + 1 < n:
        tail = <unsigned char*>malloc(n - last)
        if tail == NULL:
            return -1
        memcpy(tail, b + last + 1, n - last - 1)
        tail[n - last - 1] = 10
    row = _parse_lines(b, last + 1, ov, cv, 0, max_cols, skipped)
    if tail != NULL:
        row = _parse_lines(tail, n - last, ov, cv, row, max_cols, skipped)
        free(tail)
    return row


def _check_max_cols(int max_cols):
    if max_cols < 2 or max_cols > 256:
        raise ValueError("max_cols must be between 2 and 256")


def parse_table(const unsigned char[::1] data, int max_cols=3):
    """Parse the numeric rows of a text table.

    Returns ``(values, counts, skipped)``: float64 ``[rows, max_cols]`` (NaN where a row had fewer fields),
    int32 ``[rows]`` the number of numeric fields read from each row (2..max_cols), and the number of
    non-comment, non-blank lines that were not data rows (headers, text).
    """
    cdef const unsigned char* b = &data[0] if data.shape[0] > 0 else NULL
    cdef Py_ssize_t n = data.shape[0]
    _check_max_cols(max_cols)
    return _parse_all(&b, &n, 1, max_cols)[0]


def parse_tables(list texts, int max_cols=3):
    """:func:`parse_table` of every text in ``texts`` (``bytes``), with the GIL released once in all instead
    of once per text: threads reading a batch of files each parse a run of them without handing the GIL back and
    forth.  Returns a list of ``(values, counts, skipped)``, one per text, as ``parse_table`` gives."""
    cdef Py_ssize_t m = len(texts), k
    _check_max_cols(max_cols)
    for text in texts:
        if not isinstance(text, bytes):
            raise TypeError(f"parse_tables reads bytes, not {type(text).__name__}")
    cdef const unsigned char** ptrs = <const unsigned char**>calloc(max(m, 1), sizeof(void*))
    cdef Py_ssize_t* sizes = <Py_ssize_t*>calloc(max(m, 1), sizeof(Py_ssize_t))
    try:
        if not (ptrs and sizes):
            raise MemoryError()
        for k in range(m):  # the list holds the bytes alive, and bytes never move
            ptrs[k] = <const unsigned char*>PyBytes_AS_STRING(texts[k])
            sizes[k] = PyBytes_GET_SIZE(texts[k])
        return _parse_all(ptrs, sizes, m, max_cols)
    finally:
        free(ptrs)
        free(sizes)


cdef void _free_block(object capsule) noexcept:
    free(PyCapsule_GetPointer(capsule, NULL))


cdef object _owning_array(void* block, int nd, cnp.npy_intp* dims, int typenum):
    """A numpy array over ``block`` (from malloc) that frees it when the array and every view of it are gone."""
    arr = cnp.PyArray_SimpleNewFromData(nd, dims, typenum, block)
    cnp.set_array_base(arr, PyCapsule_New(block, NULL, _free_block))
    return arr


cdef list _parse_all(const unsigned char** ptrs, const Py_ssize_t* sizes, Py_ssize_t m, int max_cols):
    """``(values, counts, skipped)`` of each of the ``m`` texts ``ptrs[k][:sizes[k]]``, parsed with the GIL
    released once: the outputs (room for each text's lines) are allocated without it, and owned by the arrays
    returned (the rows past the last data row are allocated and unused, as ``numpy.empty``'s were)."""
    cdef Py_ssize_t k, lines
    cdef Py_ssize_t* capacity = <Py_ssize_t*>calloc(max(m, 1), sizeof(Py_ssize_t))
    cdef Py_ssize_t* rows = <Py_ssize_t*>calloc(max(m, 1), sizeof(Py_ssize_t))
    cdef double** ovs = <double**>calloc(max(m, 1), sizeof(void*))
    cdef int** cvs = <int**>calloc(max(m, 1), sizeof(void*))
    cdef int* skipped = <int*>calloc(max(m, 1), sizeof(int))
    cdef cnp.npy_intp dims[2]
    try:
        if not (capacity and rows and ovs and cvs and skipped):
            raise MemoryError()
        with nogil:
            for k in range(m):
                lines = _count_newlines(ptrs[k], sizes[k]) + 1
                capacity[k] = lines
                ovs[k] = <double*>malloc(lines * max_cols * sizeof(double))
                cvs[k] = <int*>malloc(lines * sizeof(int))
                rows[k] = -1
                if ovs[k] != NULL and cvs[k] != NULL:
                    rows[k] = _parse_text(ptrs[k], sizes[k], ovs[k], cvs[k], max_cols, &skipped[k])
        result = []
        for k in range(m):
            if rows[k] < 0:
                raise MemoryError()
            dims[0], dims[1] = capacity[k], max_cols
            values = _owning_array(ovs[k], 2, dims, cnp.NPY_FLOAT64)
            ovs[k] = NULL  # the array owns it now
            counts = _owning_array(cvs[k], 1, dims, cnp.NPY_INT32)
            cvs[k] = NULL
            result.append((values[:rows[k]], counts[:rows[k]], skipped[k]))
        return result
    finally:
        if ovs and cvs:
            for k in range(m):  # blocks no array took over (an error on the way)
                free(ovs[k])
                free(cvs[k])
        free(capacity)
        free(rows)
        free(ovs)
        free(cvs)
        free(skipped)


cdef inline unsigned char _at(const unsigned char* b, Py_ssize_t i, Py_ssize_t end) noexcept nogil:
    """b[i] inside the line (which ends at ``end``), else a newline (which nothing below accepts)."""
    return b[i] if i < end else 10


cdef inline bint _digit(unsigned char c) noexcept nogil:
    return 48 <= c <= 57


cdef inline bint _blank(unsigned char c) noexcept nogil:
    return c == 32 or c == 9 or c == 11 or c == 12  # the whitespace a line can hold without line breaks


cdef bint _number_row(const unsigned char* b, Py_ssize_t i, Py_ssize_t end) noexcept nogil:
    """Whether the line b[i:end] (leading blanks skipped) starts like a data row: a number, separators, and the
    start of a second number - the regex ``[-+]?(\\d+\\.?\\d*|\\.\\d+)([eEdD][-+]?\\d+)?[\\s,;]+[-+]?(\\d|\\.\\d|nan|
    NaN|inf)``, which never needs to backtrack, so one forward pass decides it."""
    cdef Py_ssize_t j
    cdef unsigned char c = _at(b, i, end)
    if c == 43 or c == 45:
        i += 1
    if _digit(_at(b, i, end)):
        while _digit(_at(b, i, end)):
            i += 1
        if _at(b, i, end) == 46:
            i += 1
            while _digit(_at(b, i, end)):
                i += 1
    elif _at(b, i, end) == 46 and _digit(_at(b, i + 1, end)):
        i += 1
        while _digit(_at(b, i, end)):
            i += 1
    else:
        return False
    c = _at(b, i, end)
    if c == 101 or c == 69 or c == 100 or c == 68:  # e E d D: an exponent when digits follow
        j = i + 1
        if _at(b, j, end) == 43 or _at(b, j, end) == 45:
            j += 1
        if _digit(_at(b, j, end)):
            while _digit(_at(b, j, end)):
                j += 1
            i = j
    c = _at(b, i, end)
    if not (_blank(c) or c == 44 or c == 59):
        return False
    while _blank(c) or c == 44 or c == 59:
        i += 1
        c = _at(b, i, end)
    if c == 43 or c == 45:
        i += 1
        c = _at(b, i, end)
    if _digit(c) or (c == 46 and _digit(_at(b, i + 1, end))):
        return True
    if end - i >= 3 and ((b[i] == 110 and b[i + 1] == 97 and b[i + 2] == 110) or  # nan
                         (b[i] == 78 and b[i + 1] == 97 and b[i + 2] == 78) or  # NaN
                         (b[i] == 105 and b[i + 1] == 110 and b[i + 2] == 102)):  # inf
        return True
    return False


def sniff_lines(const unsigned char[::1] data, Py_ssize_t max_lines):
    """(content lines, data-looking lines) among the first ``max_lines`` lines of a text without carriage
    returns: content lines hold something besides blanks and do not start with ``#`` or ``%``; data-looking ones
    are content lines that start like a data row (see ``_number_row``).

    Holds the GIL: a sniff's few hundred lines take microseconds, less than handing the GIL to another thread
    and taking it back can cost."""
    cdef Py_ssize_t n = data.shape[0], start = 0, end, i, lines = 0, content = 0, numeric = 0
    cdef const unsigned char* b = &data[0] if n > 0 else NULL
    cdef const unsigned char* nl
    while start < n and lines < max_lines:
        nl = <const unsigned char*>memchr(b + start, 10, n - start)
        end = nl - b if nl != NULL else n
        i = start
        while i < end and _blank(b[i]):
            i += 1
        if i < end and b[i] != 35 and b[i] != 37:
            content += 1
            numeric += _number_row(b, i, end)
        lines += 1
        start = end + 1
    return content, numeric


def binary_signs(const unsigned char[::1] data, Py_ssize_t nul_limit, Py_ssize_t sample):
    """``(nul, control)``: whether ``data[:nul_limit]`` holds a NUL byte, and how many control bytes other than
    tab, line feed, vertical tab, form feed and carriage return ``data[:sample]`` holds (what text does not
    contain).  One ``memchr`` and one byte loop the compiler vectorises, in place of a search and a
    ``bytes.translate`` copy."""
    cdef Py_ssize_t n = data.shape[0], i, control = 0
    cdef const unsigned char* b = &data[0] if n > 0 else NULL
    cdef unsigned char c
    nul_limit = min(max(nul_limit, 0), n)
    sample = min(max(sample, 0), n)
    nul = nul_limit > 0 and memchr(b, 0, nul_limit) != NULL
    for i in range(sample):
        c = b[i]
        control += (c < 32) & ((c < 9) | (c > 13))
    return nul, control
