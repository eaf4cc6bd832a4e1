# cython: language_level=3, boundscheck=False, wraparound=False
"""Many files' bytes read with the GIL released once or twice in all (Cython): threads reading a batch of files
each read a run of them without handing the GIL back and forth at every system call, as ``os.open``/``os.read``
do.

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


#: Files up to this size are read in the same GIL release as their opening, into memory of their own, and copied
#: into ``bytes`` once the GIL is back: copying a small file costs less than taking the GIL back once more.
#: Larger ones are read straight into their ``bytes`` in a second release (their copy would cost more).
cdef Py_ssize_t _SMALL = 1 << 17


def read_files(list paths):
    """The bytes of each file in ``paths`` (``bytes`` file names, as ``os.fsencode`` gives), or None where a
    file is not a regular file read whole at its ``fstat`` size (see the module's docstring)."""
    cdef Py_ssize_t m = len(paths), k
    cdef bint large = False
    for path in paths:
        if not isinstance(path, bytes):
            raise TypeError(f"read_files takes bytes file names, not {type(path).__name__}")
    cdef const char** names = <const char**>calloc(max(m, 1), sizeof(char*))
    cdef int* fds = <int*>calloc(max(m, 1), sizeof(int))
    cdef Py_ssize_t* sizes = <Py_ssize_t*>calloc(max(m, 1), sizeof(Py_ssize_t))
    cdef char** own = <char**>calloc(max(m, 1), sizeof(char*))  # a small file's memory
    cdef char** into = <char**>calloc(max(m, 1), sizeof(char*))  # a large file's bytes
    cdef bint* whole = <bint*>calloc(max(m, 1), sizeof(bint))
    cdef struct_stat st
    if fds:  # no descriptor yet (calloc's 0 is stdin, which the cleanup below must not close)
        for k in range(m):
            fds[k] = -1
    try:
        if not (names and fds and sizes and own and into and whole):
            raise MemoryError()
        for k in range(m):  # the list holds the names alive
            names[k] = PyBytes_AS_STRING(paths[k])
        with nogil:
            for k in range(m):
                sizes[k] = -1
                fds[k] = c_open(names[k], O_RDONLY | O_NONBLOCK)  # a FIFO must not block the open
                if fds[k] >= 0 and fstat(fds[k], &st) == 0 and S_ISREG(st.st_mode):
                    sizes[k] = st.st_size
                if 0 <= sizes[k] <= _SMALL:
                    own[k] = <char*>malloc(sizes[k] + 1)
                    whole[k] = own[k] != NULL and _read_all(fds[k], own[k], sizes[k])
                if fds[k] >= 0 and (sizes[k] < 0 or own[k] != NULL):
                    c_close(fds[k])
                    fds[k] = -1
        out = []
        for k in range(m):
            if own[k] != NULL:
                out.append(PyBytes_FromStringAndSize(own[k], sizes[k]) if whole[k] else None)
            elif fds[k] >= 0:
                data = PyBytes_FromStringAndSize(NULL, sizes[k])  # filled below, before anyone else sees it
                into[k] = PyBytes_AS_STRING(data)
                out.append(data)
                large = True
            else:
                out.append(None)
        if large:
            with nogil:
                for k in range(m):
                    if into[k] != NULL:
                        whole[k] = _read_all(fds[k], into[k], sizes[k])
                        c_close(fds[k])
                        fds[k] = -1
            for k in range(m):
                if into[k] != NULL and not whole[k]:
                    out[k] = None
        return out
    finally:
        if fds and own:
            for k in range(m):  # what an error on the way left open or allocated
                if fds[k] >= 0:
                    c_close(fds[k])
                free(own[k])
        free(names)
        free(fds)
        free(sizes)
        free(own)
        free(into)
        free(whole)
