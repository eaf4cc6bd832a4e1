# cython: language_level=3, boundscheck=False, wraparound=False
"""Many files' bytes read with the GIL released twice in all (Cython): threads reading a batch of files each read
a run of them without handing the GIL back and forth at every system call, as ``os.open``/``os.read`` do.

Only regular files that hold, when read, exactly the size ``fstat`` gave are answered; for anything else (no such
file, a directory, no permission, a pipe, a file that grew or shrank while it was read) the answer is None, and
the caller reads that one file the usual way, which also says what is wrong with it.  Files are opened without
blocking (a FIFO would wait for a writer), which changes nothing for a regular file.
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdlib cimport free, malloc
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
    cdef const char** names = <const char**>malloc(max(m, 1) * sizeof(char*))
    cdef int* fds = <int*>malloc(max(m, 1) * sizeof(int))
    cdef Py_ssize_t* sizes = <Py_ssize_t*>malloc(max(m, 1) * sizeof(Py_ssize_t))
    cdef char** bufs = <char**>malloc(max(m, 1) * sizeof(char*))
    cdef bint* whole = <bint*>malloc(max(m, 1) * sizeof(bint))
    cdef struct_stat st
    try:
        if not (names and fds and sizes and bufs and whole):
            raise MemoryError()
        for k in range(m):  # the list holds the names alive
            names[k] = PyBytes_AS_STRING(paths[k])
        with nogil:
            for k in range(m):
                sizes[k] = -1
                fds[k] = c_open(names[k], O_RDONLY | O_NONBLOCK)  # a FIFO must not block the open
                if fds[k] >= 0 and fstat(fds[k], &st) == 0 and S_ISREG(st.st_mode):
                    sizes[k] = st.st_size
        out = []
        for k in range(m):
            bufs[k] = NULL
            if sizes[k] < 0:
                out.append(None)
                continue
            data = PyBytes_FromStringAndSize(NULL, sizes[k])  # filled below, before anyone else sees it
            bufs[k] = PyBytes_AS_STRING(data)
            out.append(data)
        with nogil:
            for k in range(m):
                whole[k] = bufs[k] != NULL and _read_all(fds[k], bufs[k], sizes[k])
                if fds[k] >= 0:
                    c_close(fds[k])
        for k in range(m):
            if not whole[k]:
                out[k] = None
        return out
    finally:
        free(names)
        free(fds)
        free(sizes)
        free(bufs)
        free(whole)
