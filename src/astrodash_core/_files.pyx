# cython: language_level=3, boundscheck=False, wraparound=False
"""Many files' bytes read with the GIL released once in all (Cython): threads reading a batch of files each read
a run of them without handing the GIL back and forth at every system call, as ``os.open``/``os.read`` do.  The
files are read into memory of their own, then copied into ``bytes`` once the GIL is back (a copy costs less than
taking the GIL back once more).

Only regular files that hold, when read, exactly the size ``fstat`` gave are answered; for anything else (no such
file, a directory, no permission, a pipe, a file that grew or shrank while it was read) the answer is None, and
the caller reads that one file the usual way, which also says what is wrong with it.  Files are opened without
blocking (a FIFO would wait for a writer), which changes nothing for a regular file.
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdlib cimport calloc, free, malloc
from posix.fcntl cimport O_NONBLOCK, O_RDONLY, open as c_open
from posix.stat cimport S_ISREG, fstat, struct_stat
from posix.unistd cimport close as c_close, read as c_read


cdef bint _read_all(int fd, char* buf, Py_ssize_t size) noexcept nogil:
    """Whether ``fd`` holds exactly ``size`` more bytes, read into ``buf``."""
    cdef Py_ssize_t got = 0, r
    cdef char probe
    while got < size:
        r = c_read(fd, buf + got, size - got)
        if r <= 0:
            return False  # an error, or the file shrank
        got += r
    return c_read(fd, &probe, 1) == 0  # and not one byte more (the file did not grow)


def read_files(list paths):
    """The bytes of each file in ``paths`` (``bytes`` file names, as ``os.fsencode`` gives), or None where a
    file is not a regular file read whole at its ``fstat`` size (see the module's docstring)."""
    cdef Py_ssize_t m = len(paths), k
    for path in paths:
        if not isinstance(path, bytes):
            raise TypeError(f"read_files takes bytes file names, not {type(path).__name__}")
    cdef const char** names = <const char**>calloc(max(m, 1), sizeof(char*))
    cdef Py_ssize_t* sizes = <Py_ssize_t*>calloc(max(m, 1), sizeof(Py_ssize_t))
    cdef char** bufs = <char**>calloc(max(m, 1), sizeof(char*))
    cdef int fd
    cdef struct_stat st
    try:
        if not (names and sizes and bufs):
            raise MemoryError()
        for k in range(m):  # the list holds the names alive
            names[k] = PyBytes_AS_STRING(paths[k])
        with nogil:
            for k in range(m):
                fd = c_open(names[k], O_RDONLY | O_NONBLOCK)  # a FIFO must not block the open
                if fd < 0:
                    continue
                if fstat(fd, &st) == 0 and S_ISREG(st.st_mode):
                    sizes[k] = st.st_size
                    bufs[k] = <char*>malloc(sizes[k] + 1)
                    if bufs[k] != NULL and not _read_all(fd, bufs[k], sizes[k]):
                        free(bufs[k])
                        bufs[k] = NULL
                c_close(fd)
        return [PyBytes_FromStringAndSize(bufs[k], sizes[k]) if bufs[k] != NULL else None for k in range(m)]
    finally:
        if bufs:
            for k in range(m):
                free(bufs[k])
        free(names)
        free(sizes)
        free(bufs)
