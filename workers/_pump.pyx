# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The compiled pump of :class:`workers.raw_engine.RawUsersEngine` (Cython).

One call handles every ready connection, as the engine's pure-Python ``_pump`` does, and then
keeps waiting on the engine's epoll set itself (the GIL released) for up to a 2 ms slice, so
the event loop's own wait and call are paid once per slice rather than once per one or two
responses; a timerfd in the set ends the slice, so those waits carry no timeout of their own
(a timeout arms a kernel timer on every wait that blocks: 7 % more CPU per request on a VM);
the engine state it touches on every batch is C members (:class:`EngineFields`). Closed
model with one request and no checks: the slice runs without the GIL (:meth:`Pump._quick`),
back under it only for an event that needs Python, so the GIL is not handed over on every
wait and the process's other threads have it for the whole slice.
For each ready socket it reads into one C buffer, and when the read holds exactly one whole
keep-alive response that :func:`parse_whole` accepts (HTTP/1.1, a status 200-599 but 204 and
304, ``Content-Length`` or ``chunked`` framing, nothing unusual), records the three integers
into the recorder's arrays and writes the next request: no Python object per response. Open
model: it records four integers (the intended time too), then sends the oldest queued request
on the connection or parks it in the engine's idle list, as
``RawUsersEngine.freed`` does, and pumps the engine's pacer (Python) once per batch; a timerfd in
the epoll set (:meth:`Pump.arm`) wakes it when the next request is due, and :meth:`Pump.send` is
the pacer's send. Anything else (a response split over reads, a close, a reset, an error, a
framing :func:`parse_whole` does not take, the end of the schedule) goes to the engine's Python
bookkeeping exactly as the pure-Python pump sends it there, httptools included, so both pumps
record the same rows; ``tests/workers`` runs every engine test against both. With response
checks, a response it parsed goes to ``RawUsersEngine.checked_whole`` (its bytes and where its
body starts) and one httptools parsed to ``checked``, so both pumps judge every response.
"""

from cpython.array cimport array, resize_smart
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.object cimport PyObject
from libc.errno cimport EAGAIN, EINTR, errno  # EWOULDBLOCK is EAGAIN on Linux
from libc.stdlib cimport free, malloc
from libc.string cimport memcmp, memcpy, strerror
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, itimerspec, timespec
from posix.unistd cimport close, read, write


cdef extern from "<sys/epoll.h>" nogil:
    ctypedef union epoll_data_t:
        int fd
        unsigned long long u64

    struct epoll_event:
        unsigned int events
        epoll_data_t data

    int epoll_wait(int epfd, epoll_event *events, int maxevents, int timeout)
    enum: EPOLLIN


cdef extern from * nogil:
    int __builtin_ctzll(unsigned long long word)  # GCC and Clang


cdef extern from *:
    """
    /* A list's size and item, read without the GIL and without a reference: for Pump._quick,
       which reads the engine's watched list while no Python code can change it. */
    static inline Py_ssize_t slogate_list_size(PyObject *list) { return PyList_GET_SIZE(list); }
    static inline PyObject *slogate_list_item(PyObject *list, Py_ssize_t i) {
        return PyList_GET_ITEM(list, i);
    }
    /* An array's length cut to n within its allocation (no realloc, unlike resize_smart). */
    static inline void slogate_cut(PyObject *array, Py_ssize_t n) { Py_SET_SIZE(array, n); }
    """
    Py_ssize_t slogate_list_size(PyObject *lst) nogil
    PyObject *slogate_list_item(PyObject *lst, Py_ssize_t i) nogil
    void slogate_cut(object array, Py_ssize_t n)


cdef extern from "<sys/timerfd.h>" nogil:
    int timerfd_create(int clockid, int flags)
    int timerfd_settime(int fd, int flags, const itimerspec *new_value, itimerspec *old_value)
    enum: TFD_NONBLOCK, TFD_CLOEXEC, TFD_TIMER_ABSTIME


cdef enum:
    MAX_EVENTS = 512  # ready connections handled per call (more: the next call, at once)
    READ_BYTES = 65536  # as the pure-Python pump reads
    CODE_SPAN = 1024  # workers.recorder.CODE_SPAN
    SLICE_NS = 2000000  # how long one call of Pump.pump may keep the event loop (2 ms)
    RESERVE = 4096  # rows one GIL-free stretch of Pump._quick may record before handing back
    READ_NONE = -3  # Pump._batch: read the first event's socket itself (see Pump._resume)

# Bytes llhttp takes in a header name (an RFC 9110 token) and in a value or reason phrase (HTAB,
# SP, VCHAR, obs-text).
cdef unsigned char TOKEN[256]
cdef unsigned char VALUE[256]
cdef unsigned char HEX[256]


cdef void _tables() noexcept:
    cdef int c
    for c in range(256):
        TOKEN[c] = 0
        VALUE[c] = 1 if c == 9 or 0x20 <= c <= 0x7e or c >= 0x80 else 0
        HEX[c] = 0
    for c in b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ":
        TOKEN[c] = 1
    for c in range(16):
        HEX[<unsigned char>b"0123456789abcdef"[c]] = c + 1
        HEX[<unsigned char>b"0123456789ABCDEF"[c]] = c + 1


_tables()


cdef inline bint _named(const unsigned char *p, Py_ssize_t n, const char *lower,
                        Py_ssize_t size) noexcept nogil:
    """Return whether ``p[:n]`` is ``lower`` (``size`` bytes of a-z and ``-``) in any case.
    ``p`` holds token or field-value bytes only, so OR 0x20 lowers exactly what matters: the
    bytes that OR to a lower-case letter are that letter in either case, and to ``-``, ``-``
    or a CR (never in a token or a value)."""
    cdef Py_ssize_t j
    cdef unsigned char differ = 0
    if n != size:
        return False
    for j in range(n):
        differ |= (p[j] | 0x20) ^ <unsigned char>lower[j]
    return differ == 0


cdef inline unsigned long long _load8(const unsigned char *p) noexcept nogil:
    cdef unsigned long long word
    memcpy(&word, p, 8)
    return word


cdef inline unsigned long long _zero_bytes(unsigned long long word) noexcept nogil:
    """Return ``word`` with the high bit set in each byte that is zero, at least in the lowest
    such byte (a borrow may also mark bytes above it): its lowest set bit is exact."""
    return (word - 0x0101010101010101ULL) & ~word & 0x8080808080808080ULL


cdef inline Py_ssize_t _value_end(const unsigned char *p, Py_ssize_t i,
                                  Py_ssize_t n) noexcept nogil:
    """Return where the run of field-value bytes (``VALUE``) starting at ``p[i]`` ends, at
    ``n`` at most. Eight bytes a step: the lowest byte below 0x20 or equal to 0x7f is found
    exactly from the word (a tab there is a value byte: the scan goes on after it)."""
    cdef unsigned long long word, bad
    while i + 8 <= n:
        word = _load8(p + i)
        bad = ((word - 0x2020202020202020ULL) & ~word & 0x8080808080808080ULL
               | _zero_bytes(word ^ 0x7f7f7f7f7f7f7f7fULL))
        if bad:
            i += __builtin_ctzll(bad) >> 3
            if p[i] != 9:
                return i
            i += 1
        else:
            i += 8
    while i < n and VALUE[p[i]]:
        i += 1
    return i


cdef inline Py_ssize_t _name_end(const unsigned char *p, Py_ssize_t i,
                                 Py_ssize_t n) noexcept nogil:
    """Return where the header name starting at ``p[i]`` ends (its ``:``), or -1 when no
    ``:`` follows a run of one or more token bytes (``TOKEN``). The ``:`` is found eight
    bytes a step, then the name's bytes are checked without a branch per byte."""
    cdef Py_ssize_t start = i, j
    cdef unsigned long long hit
    cdef unsigned char token = 1
    while True:
        if i + 8 > n:
            while i < n and p[i] != 58:
                i += 1
            if i >= n:
                return -1
            break
        hit = _zero_bytes(_load8(p + i) ^ 0x3a3a3a3a3a3a3a3aULL)
        if hit:
            i += __builtin_ctzll(hit) >> 3
            break
        i += 8
    for j in range(start, i):
        token &= TOKEN[p[j]]
    return i if token and i > start else -1


cdef inline bint _crlf(const unsigned char *p, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    return i + 1 < n and p[i] == 13 and p[i + 1] == 10


cdef Py_ssize_t _chunked_end(const unsigned char *p, Py_ssize_t i,
                             Py_ssize_t n) noexcept nogil:
    """Return where a chunked body starting at ``p[i]`` ends (no extensions, no trailers), or
    -1 when it does not end within ``n`` bytes or has anything this parser leaves to llhttp."""
    cdef Py_ssize_t start, size
    while True:
        start, size = i, 0
        while i < n and HEX[p[i]]:
            size = size * 16 + HEX[p[i]] - 1
            i += 1
            if i - start > 12:
                return -1
        if i == start or not _crlf(p, i, n):
            return -1
        i += 2
        if size == 0:
            return i + 2 if _crlf(p, i, n) else -1
        if size > n - i - 2 or not _crlf(p, i + size, n):
            return -1
        i += size + 2


cdef int parse_whole(const unsigned char *p, Py_ssize_t n, Py_ssize_t *body_at) noexcept nogil:
    """Return the status of ``p[:n]`` when it is exactly one whole keep-alive HTTP/1.1 response
    framed by ``Content-Length`` or ``chunked``, with nothing before or after it; 0 for anything
    else (a partial response, a close, an upgrade, an unusual byte), which llhttp then parses.
    ``*body_at`` is set to where a ``Content-Length`` body starts, or -1 for a chunked one.

    Strict where llhttp is lenient: a response this accepts, llhttp reads the same way (the
    Hypothesis test in ``tests/workers/test_pump.py`` checks the claim on random responses).
    """
    cdef Py_ssize_t i, start, vstart, vend, length = -1, j
    cdef int status
    cdef bint chunked = False
    if n < 17 or memcmp(p, b"HTTP/1.1 ", 9) != 0 or p[12] != 32:
        return 0
    if not (48 <= p[9] <= 57 and 48 <= p[10] <= 57 and 48 <= p[11] <= 57):
        return 0
    status = (p[9] - 48) * 100 + (p[10] - 48) * 10 + p[11] - 48
    if status < 200 or status > 599 or status == 204 or status == 304:
        return 0
    i = _value_end(p, 13, n)
    if not _crlf(p, i, n):
        return 0
    i += 2
    while not _crlf(p, i, n):  # header lines until the empty one
        start = i
        j = _name_end(p, i, n)  # the name is p[start:j]
        if j < 0:
            return 0
        i = j
        i += 1
        while i < n and (p[i] == 32 or p[i] == 9):
            i += 1
        vstart = i
        i = _value_end(p, i, n)
        if not _crlf(p, i, n):
            return 0
        vend = i
        while vend > vstart and (p[vend - 1] == 32 or p[vend - 1] == 9):
            vend -= 1
        i += 2
        if _named(p + start, j - start, "content-length", 14):
            if length >= 0 or vend == vstart or vend - vstart > 15:
                return 0
            length = 0
            while vstart < vend:
                if not 48 <= p[vstart] <= 57:
                    return 0
                length = length * 10 + p[vstart] - 48
                vstart += 1
        elif _named(p + start, j - start, "transfer-encoding", 17):
            if chunked or not _named(p + vstart, vend - vstart, "chunked", 7):
                return 0
            chunked = True
        elif _named(p + start, j - start, "connection", 10):
            if not _named(p + vstart, vend - vstart, "keep-alive", 10):
                return 0
        elif (_named(p + start, j - start, "proxy-connection", 16)
              or _named(p + start, j - start, "keep-alive", 10)
              or _named(p + start, j - start, "upgrade", 7)):
            return 0
    i += 2
    if chunked:
        body_at[0] = -1
        return status if length < 0 and _chunked_end(p, i, n) == n else 0
    body_at[0] = i
    return status if length == n - i else 0


def parse_one(data: bytes) -> int:
    """Return :func:`parse_whole` of ``data`` (for tests): its status, or 0 when it defers."""
    cdef Py_ssize_t body_at
    return parse_whole(<const unsigned char *>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data),
                       &body_at)


def body_start(data: bytes) -> int:
    """Return where :func:`parse_whole` says the body of ``data`` starts (-1: chunked), for
    tests; ``data`` must be a response it takes."""
    cdef Py_ssize_t body_at = -2
    if not parse_whole(<const unsigned char *>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data),
                       &body_at):
        raise ValueError("the compiled parser does not take this response")
    return body_at


def scan_ends(data: bytes, Py_ssize_t start) -> tuple[int, int]:
    """Return where a field value and where a header name starting at ``data[start]`` end
    (``_value_end``, ``_name_end``: -1 for no name), for tests of the word-at-a-time scans."""
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    if not 0 <= start <= n:
        raise ValueError("start is outside data")
    return _value_end(p, start, n), _name_end(p, start, n)


cdef inline long long _now_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <long long>ts.tv_sec * 1000000000 + ts.tv_nsec


cdef int _timer(object epoll) except -1:
    """Return a new non-blocking timerfd (CLOCK_MONOTONIC), watched by ``epoll`` for input."""
    cdef int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)
    if fd < 0:
        raise OSError(errno, strerror(errno).decode())
    epoll.register(fd, EPOLLIN)
    return fd


cdef int _arm(int fd, long long deadline_ns) noexcept nogil:
    """Have the timerfd ``fd`` fire at ``deadline_ns`` (CLOCK_MONOTONIC), once; 0 disarms it.
    Setting it zeroes its expirations: it is no longer readable. -1 and errno on failure."""
    cdef itimerspec spec
    spec.it_interval.tv_sec = spec.it_interval.tv_nsec = 0
    spec.it_value.tv_sec = deadline_ns // 1000000000
    spec.it_value.tv_nsec = deadline_ns % 1000000000
    return timerfd_settime(fd, TFD_TIMER_ABSTIME, &spec, NULL)


cdef int _set_timer(int fd, long long deadline_ns) except -1:
    """:func:`_arm`, raising OSError on failure."""
    if _arm(fd, deadline_ns) < 0:
        raise OSError(errno, strerror(errno).decode())
    return 0


cdef inline void _append(array buffer, long value) noexcept:
    cdef Py_ssize_t size = len(buffer)
    resize_smart(buffer, size + 1)
    buffer.data.as_longs[size] = value


cdef struct ConnState:
    long long code, seq, intended, sent
    int fd
    bint busy, got, user


cdef class ConnFields:
    """The numeric fields of a raw-socket connection as a C struct: the base of the engine's
    ``_RawConn``, so this pump reads and sets them without a Python attribute lookup or an
    integer object, and without the GIL (:meth:`Pump._quick` finds the struct of a watched
    connection at a fixed offset from the object); Python code sees them as plain attributes."""

    cdef ConnState st

    @property
    def busy(self) -> bool:
        return self.st.busy

    @busy.setter
    def busy(self, bint value) -> None:
        self.st.busy = value

    @property
    def got(self) -> bool:
        return self.st.got

    @got.setter
    def got(self, bint value) -> None:
        self.st.got = value

    @property
    def user(self) -> bool:
        return self.st.user

    @user.setter
    def user(self, bint value) -> None:
        self.st.user = value

    @property
    def code(self) -> int:
        return self.st.code

    @code.setter
    def code(self, long long value) -> None:
        self.st.code = value

    @property
    def seq(self) -> int:
        return self.st.seq

    @seq.setter
    def seq(self, long long value) -> None:
        self.st.seq = value

    @property
    def intended(self) -> int:
        return self.st.intended

    @intended.setter
    def intended(self, long long value) -> None:
        self.st.intended = value

    @property
    def sent(self) -> int:
        return self.st.sent

    @sent.setter
    def sent(self, long long value) -> None:
        self.st.sent = value

    @property
    def fd(self) -> int:
        return self.st.fd

    @fd.setter
    def fd(self, int value) -> None:
        self.st.fd = value


cdef class EngineFields:
    """The engine state the pump reads or sets on every batch, as C members: the base of
    :class:`workers.raw_engine.FastEngine`, as :class:`ConnFields` is of its connections, so a
    batch of one or two responses costs no attribute lookup and no integer object; Python code
    sees plain attributes. ``finished``: the run's ``done`` future is set."""

    cdef public long long launched, in_flight, measured_end_ns, users_stop_ns, next_due_ns
    cdef public bint stopping, backstop, finished


cdef class Pump:
    """The compiled ``_pump`` of one :class:`RawUsersEngine` (see the module docstring)."""

    cdef object engine
    cdef EngineFields state  # the engine itself, seen through its C members
    cdef int epoll_fd
    # What stays put for the engine's life, read once here rather than once per call: a call
    # often handles one or two responses, and a dozen attribute lookups cost ~0.5 us. The
    # recorder's arrays are emptied in place (its flush), the watched list extended in place.
    cdef object recorder
    cdef array codes, intendeds, sents, dones
    cdef list watched, idle
    cdef object queue  # the open model's queued (seq, intended) pairs, a deque
    cdef long long base, limit, warmup_n
    cdef bint single, users, checking
    # checks: the whole response last checked, its request's code and its outcome
    cdef bytes checked_data
    cdef long long checked_code
    cdef int checked_outcome
    cdef int timer_fd  # open model: a timerfd in the engine's epoll set, for the pacer; else -1
    cdef bint fired  # the timer fired and was not re-armed since (re-arming clears it)
    cdef int slice_fd  # a timerfd in the engine's epoll set that ends pump()'s slice
    cdef bint sliced  # it fired since pump() armed it
    cdef bytes payload
    cdef unsigned char *buffer
    cdef epoll_event events[MAX_EVENTS]
    # Pump._quick, the closed model's GIL-free stretch (one request, no checks): what it reads
    # (set with the GIL before each stretch) and where it stopped when an event needs Python
    cdef bint quick  # this engine's responses may be handled without the GIL
    cdef public Py_ssize_t reserve  # rows per GIL-free stretch (RESERVE; tests set fewer)
    cdef PyObject *watched_p  # self.watched, borrowed
    cdef PyObject *none_p  # None, borrowed
    cdef Py_ssize_t st_offset  # where a ConnFields object's ConnState is, from its start
    cdef const char *payload_p
    cdef Py_ssize_t payload_n
    cdef long *codes_p
    cdef long *sents_p
    cdef long *dones_p
    cdef Py_ssize_t rows_at, rows, room  # the arrays' length before the stretch; rows since
    cdef long long q_launched, q_stop_ns, q_last, q_warmups
    cdef int stop_k, stop_count, stop_errno
    cdef Py_ssize_t stop_got  # bytes read from event stop_k's socket, or READ_NONE
    cdef Py_ssize_t stop_sent  # >= -1: stop_k's next request went out short (what write said)

    def __cinit__(self, engine: object) -> None:
        recorder = engine.recorder
        for column in (recorder.codes, recorder.intended, recorder.sent, recorder.done):
            if not isinstance(column, array) or column.typecode != "l" or column.itemsize != 8:
                raise TypeError("the recorder's buffers are not arrays of 64-bit C longs")
        self.engine = engine
        self.state = <EngineFields?>engine
        self.epoll_fd = engine.epoll.fileno()
        self.recorder = recorder
        self.codes, self.sents, self.dones = recorder.codes, recorder.sent, recorder.done
        self.intendeds = recorder.intended
        self.watched, self.idle, self.queue = engine.watched, engine.idle, engine.queue
        self.users = engine.plan.model == "closed"
        self.base, self.limit, self.warmup_n = (engine.start_ns, engine.users_limit,
                                                engine.warmup_n)
        self.single, self.payload = engine.single, engine.payload
        self.checking = engine.checking
        self.timer_fd = self.slice_fd = -1
        self.quick = self.users and self.single and not self.checking
        self.reserve = RESERVE
        if self.quick:
            self.payload_p = PyBytes_AS_STRING(self.payload)
            self.payload_n = PyBytes_GET_SIZE(self.payload)
        self.watched_p = <PyObject *>self.watched
        self.none_p = <PyObject *>None
        probe = ConnFields()
        self.st_offset = <char *>&probe.st - <char *><PyObject *>probe
        self.buffer = <unsigned char *>malloc(READ_BYTES)
        if self.buffer is NULL:
            raise MemoryError()
        self.slice_fd = _timer(engine.epoll)
        if not self.users:
            self.timer_fd = _timer(engine.epoll)

    def __dealloc__(self) -> None:
        free(self.buffer)
        self._close_timers()

    cdef void _close_timers(self) noexcept:
        if self.timer_fd >= 0:
            close(self.timer_fd)
            self.timer_fd = -1
        if self.slice_fd >= 0:
            close(self.slice_fd)
            self.slice_fd = -1

    def close(self) -> None:
        """Close the pump's timers (the engine's epoll set forgets them as they close)."""
        self._close_timers()

    def arm(self, long long deadline_ns) -> None:
        """Wake the pump at ``deadline_ns`` (``time.monotonic_ns``, CLOCK_MONOTONIC), to pump the
        pacer then: to the nanosecond, less the kernel's timer slack (50 us), never early."""
        if self.timer_fd < 0:
            return  # closed: the run is over
        _set_timer(self.timer_fd, deadline_ns if deadline_ns > 0 else 1)  # 0 would disarm it
        self.fired = False  # setting a timerfd zeroes its expirations: no longer readable

    def send(self, conn: object, long long seq, long long intended) -> None:
        """Send request ``seq`` (intended at ``intended``, monotonic ns) on the free connection
        ``conn``: the engine's ``_send``, written out (the pacer calls it for every request)."""
        cdef ConnFields fields = <ConnFields?>conn
        fields.st.busy, fields.st.got = True, False
        fields.st.seq, fields.st.intended = seq, intended
        self.state.in_flight += 1
        self._send(fields, _now_ns())

    def pump(self) -> None:
        """Handle every ready connection (the engine's epoll set is readable), then go on
        waiting on the set itself, the GIL released, until the slice ends (``SLICE_NS``): the
        event loop's own wait and its call of this method are paid once per slice, not once per
        handful of responses. The slice's timerfd, armed once per call, ends the wait: a wait
        with a timeout would arm a kernel timer each time it blocks. Back to the loop at once
        when nothing is ready on entry or the run is done, else when the slice ends; the loop's
        timers and calls wait at most one slice.

        Closed model with one request and no checks: the whole slice runs without the GIL
        (:meth:`_quick`), taking it back only for an event that needs Python; otherwise the
        GIL is released for each wait only."""
        cdef long long slice_end = _now_ns() + SLICE_NS, now
        cdef int count, code
        cdef bint waiting = False
        self.sliced = False
        try:
            while True:
                if self.quick:
                    if self.state.finished:
                        return
                    try:
                        self._begin()
                        with nogil:
                            code = self._quick(&waiting, slice_end)
                    finally:
                        self._settle()
                    if code < 0:
                        raise OSError(self.stop_errno, strerror(self.stop_errno).decode())
                    if code == 0:
                        return
                    now = self._resume()
                else:
                    if waiting:
                        with nogil:
                            count = epoll_wait(self.epoll_fd, self.events, MAX_EVENTS, -1)
                    else:
                        count = epoll_wait(self.epoll_fd, self.events, MAX_EVENTS, 0)
                    if count < 0:
                        if errno == EINTR:
                            return
                        raise OSError(errno, strerror(errno).decode())
                    if count == 0:
                        return
                    now = self._batch(0, count, READ_NONE)
                if self.state.finished:
                    return
                code = self._goes_on(now, slice_end, &waiting)
                if code < 0:
                    raise OSError(errno, strerror(errno).decode())
                if code == 0:
                    return
        finally:
            if waiting:  # disarm it: zeroes its expirations too, if it fired
                _set_timer(self.slice_fd, 0)

    cdef int _begin(self) except -1:
        """Before a GIL-free stretch: room for ``reserve`` rows at the end of the recorder's
        arrays (their length is set back by :meth:`_settle`), and the engine state it reads."""
        cdef Py_ssize_t at = len(self.codes), room = max(self.reserve, 1)
        # first what _settle writes back, so a failed resize below leaves nothing changed
        self.rows_at, self.rows, self.room = at, 0, room
        self.q_launched, self.q_stop_ns = self.state.launched, self.state.users_stop_ns
        self.q_last = self.q_warmups = 0
        self.stop_got, self.stop_sent = READ_NONE, READ_NONE
        resize_smart(self.codes, at + room)
        resize_smart(self.sents, at + room)
        resize_smart(self.dones, at + room)
        self.codes_p = self.codes.data.as_longs + at
        self.sents_p = self.sents.data.as_longs + at
        self.dones_p = self.dones.data.as_longs + at
        return 0

    cdef int _settle(self) except -1:
        """After a GIL-free stretch: the arrays hold exactly the rows recorded; the engine's
        next sequence number, last measured response and warm-up count are brought up to date."""
        cdef Py_ssize_t length = self.rows_at + self.rows  # <= what _begin made room for
        slogate_cut(self.codes, length)
        slogate_cut(self.sents, length)
        slogate_cut(self.dones, length)
        self.state.launched = self.q_launched
        if self.q_last:
            self.state.measured_end_ns = self.q_last
        if self.q_warmups:
            self.recorder.warmup_count += self.q_warmups
        return 0

    cdef int _quick(self, bint *waiting, long long slice_end) noexcept nogil:
        """The closed model's hot path without the GIL: wait on the epoll set (no timeout after
        the first, non-blocking call: the slice's timerfd ends the wait), and for each ready
        user whose read holds one whole keep-alive response (:func:`parse_whole`) with the
        schedule still on, record it and write the next request, as :meth:`_batch` does.
        Return 0 when nothing was ready on entry or the slice is over; 1 at the first event
        that needs Python (``stop_k`` of ``stop_count``; ``stop_got``: what was read from its
        socket; ``stop_sent``: its next request went out short), handled by :meth:`_resume`;
        -1 on an error of ``epoll_wait`` or the timer (``stop_errno``). The engine's watched
        list is read without a reference: no Python code runs until this returns."""
        cdef int count, k, fd, status, code
        cdef unsigned int mask
        cdef PyObject *item
        cdef ConnState *st
        cdef Py_ssize_t got, body_at, sent
        cdef long long now = 0
        while True:
            count = epoll_wait(self.epoll_fd, self.events, MAX_EVENTS, -1 if waiting[0] else 0)
            if count < 0:
                if errno == EINTR:
                    return 0
                self.stop_errno = errno
                return -1
            if count == 0:
                return 0
            for k in range(count):
                fd, mask = self.events[k].data.fd, self.events[k].events
                if fd == self.slice_fd:
                    self.sliced = True
                    continue
                if fd >= slogate_list_size(self.watched_p):
                    continue
                item = slogate_list_item(self.watched_p, fd)
                if item == self.none_p:
                    continue
                st = <ConnState *>(<char *>item + self.st_offset)
                if mask != EPOLLIN or self.rows >= self.room:
                    return self._stop(k, count)
                got = read(fd, self.buffer, READ_BYTES)
                if got <= 0:
                    if got < 0 and (errno == EAGAIN or errno == EINTR):
                        continue
                    self.stop_errno = errno if got < 0 else 0
                    self.stop_got = got
                    return self._stop(k, count)
                status = 0 if st.got else parse_whole(self.buffer, got, &body_at)
                now = _now_ns()
                if not (status and self.q_launched < self.limit and now < self.q_stop_ns):
                    self.stop_got = got
                    return self._stop(k, count)
                if st.seq >= self.warmup_n:
                    self.codes_p[self.rows] = st.code + status
                    self.sents_p[self.rows] = st.sent - self.base
                    self.dones_p[self.rows] = now - self.base
                    self.rows += 1
                    self.q_last = now
                else:
                    self.q_warmups += 1
                st.seq = self.q_launched  # intended: the sent time; got is False
                self.q_launched += 1
                st.sent = now
                sent = write(fd, self.payload_p, self.payload_n)
                if sent != self.payload_n:  # the rest (or the error) is Python's: _resume
                    self.stop_errno = errno if sent < 0 else 0
                    self.stop_sent = sent
                    return self._stop(k, count)
            code = self._goes_on(now, slice_end, waiting)
            if code <= 0:
                self.stop_errno = errno
                return code

    cdef int _goes_on(self, long long now, long long slice_end, bint *waiting) noexcept nogil:
        """After a batch (``now``: the clock's last reading, 0 if none): 1 when the slice goes
        on, its timer armed at the first such batch of the call (``waiting``: armed, so the
        next wait needs no timeout); 0 when the slice is over; -1 and errno if the timer could
        not be set."""
        if self.sliced or (now or _now_ns()) >= slice_end:
            return 0
        if not waiting[0]:
            if _arm(self.slice_fd, slice_end) < 0:
                return -1
            waiting[0] = True
        return 1

    cdef inline int _stop(self, int k, int count) noexcept nogil:
        self.stop_k, self.stop_count = k, count
        return 1

    cdef long long _resume(self) except -1:
        """With the GIL: handle the event :meth:`_quick` stopped at (its read already done, or
        its next request gone out short), then the rest of that batch, as :meth:`_batch` does."""
        cdef int k = self.stop_k
        cdef ConnFields fields
        if self.stop_sent == READ_NONE:
            return self._batch(k, self.stop_count, self.stop_got)
        fields = <ConnFields>self.watched[self.events[k].data.fd]
        self._sent(fields, self.payload, self.stop_sent, self.stop_errno)
        return self._batch(k + 1, self.stop_count, READ_NONE)

    cdef long long _batch(self, int start, int count, Py_ssize_t first_got) except -1:
        """Handle the ready connections ``start`` to ``count`` in ``self.events``; return the
        clock's last reading (monotonic ns), 0 if it read none. ``first_got`` other than
        ``READ_NONE``: the first one's socket was read already (that many bytes in the buffer,
        or the end or error ``stop_errno``)."""
        cdef object engine = self.engine
        cdef EngineFields state = self.state
        cdef array codes = self.codes, sents = self.sents, dones = self.dones
        cdef list watched = self.watched
        cdef long long base = self.base, limit = self.limit, warmup_n = self.warmup_n
        cdef long long last = 0, now = 0
        cdef int k, fd, status, err
        cdef unsigned int mask
        cdef Py_ssize_t got, body_at
        cdef bint keep_alive
        cdef ConnFields fields
        cdef unsigned long long expirations
        for k in range(start, count):
            fd, mask = self.events[k].data.fd, self.events[k].events
            if fd == self.timer_fd:  # the pacer's timer: pumped after the batch, below
                self.fired = True
                continue
            if fd == self.slice_fd:  # pump()'s slice is over
                self.sliced = True
                continue
            if fd >= len(watched):
                continue
            conn = watched[fd]
            if conn is None:
                continue
            fields = <ConnFields>conn  # every _RawConn is one (see workers.pump)
            if k == start and first_got != READ_NONE:
                got, err = first_got, self.stop_errno
            else:
                if mask != EPOLLIN:
                    engine._event(conn, mask)
                    continue
                got = read(fd, self.buffer, READ_BYTES)
                err = errno
            if got <= 0:
                if got < 0 and (err == EAGAIN or err == EINTR):
                    continue
                engine.lost(conn, OSError(err, strerror(err).decode()) if got else None)
                continue
            status = 0 if fields.st.got else parse_whole(self.buffer, got, &body_at)
            keep_alive = True
            if not status:  # httptools takes it, as in the pure-Python pump
                outcome = engine._parse(conn, PyBytes_FromStringAndSize(<char *>self.buffer, got))
                if outcome is None:
                    continue
                status, keep_alive = outcome
                if self.checking:  # the headers and body httptools kept
                    status = engine.checked(conn, status)
            elif self.checking:
                status = self._checked(conn, fields, status, got, body_at)
            now = _now_ns()
            if not self.users:
                if keep_alive and fields.st.busy:
                    if self._freed(fields, status, now):
                        last = now
                else:  # a close, or nothing in flight: the shared bookkeeping
                    engine.completed(conn, status, keep_alive)
                continue
            if not (keep_alive and state.launched < limit and now < state.users_stop_ns):
                engine.completed(conn, status, keep_alive)
                continue
            if fields.st.seq >= warmup_n:
                _append(codes, fields.st.code + status)
                _append(sents, fields.st.sent - base)
                _append(dones, now - base)
                last = now
            else:
                self.recorder.warmup_count += 1
            fields.st.seq = state.launched  # intended: the sent time; got is False
            state.launched += 1
            self._send(fields, now)
        if last:
            state.measured_end_ns = last
        if not self.users:
            if state.stopping:
                engine._maybe_done()
            elif _now_ns() >= state.next_due_ns or (state.backstop and state.in_flight == 0):
                engine._tick()  # re-arms the timer (clearing it) unless the schedule is over
            if self.fired:  # not re-armed: read it, or it stays readable
                read(self.timer_fd, &expirations, 8)
                self.fired = False
        return now

    cdef int _checked(self, object conn, ConnFields fields, int status, Py_ssize_t got,
                      Py_ssize_t body_at) except -1:
        """Return the outcome of the whole response in the buffer (``got`` bytes, its body from
        ``body_at``) under the checks of ``fields``' endpoint: the engine's ``checked_whole``,
        or, when the bytes are the very ones last checked for the same endpoint, its outcome
        again (a target repeating its response: until its ``Date`` changes)."""
        cdef bytes data
        if (fields.st.code == self.checked_code and self.checked_data is not None
                and PyBytes_GET_SIZE(self.checked_data) == got
                and memcmp(PyBytes_AS_STRING(self.checked_data), self.buffer, got) == 0):
            return self.checked_outcome
        data = PyBytes_FromStringAndSize(<char *>self.buffer, got)
        outcome = self.engine.checked_whole(conn, status, data, body_at)
        self.checked_data, self.checked_code, self.checked_outcome = data, fields.st.code, outcome
        return outcome

    cdef bint _freed(self, ConnFields fields, int status, long long now) except -1:
        """The open model's ``RawUsersEngine.freed`` for a keep-alive response on a busy
        connection, written out: record it, then send the oldest queued request on the
        connection or park it. Return whether the row counts (not warm-up)."""
        cdef long long base = self.base
        cdef bint recorded = False
        if fields.st.seq >= self.warmup_n:
            _append(self.codes, fields.st.code + status)
            _append(self.intendeds, fields.st.intended - base)
            _append(self.sents, fields.st.sent - base)
            _append(self.dones, now - base)
            recorded = True
        else:
            self.recorder.warmup_count += 1
        if not self.queue:
            fields.st.busy = False
            self.state.in_flight -= 1
            self.idle.append(fields)
            return recorded
        seq, intended = self.queue.popleft()
        fields.st.seq, fields.st.intended, fields.st.got = seq, intended, False
        self._send(fields, now)
        return recorded

    cdef int _send(self, ConnFields fields, long long now) except -1:
        """Write the next request on ``fields``' connection (sent at ``now``): the picked
        endpoint's bytes; what the socket does not take goes out when it is writable."""
        cdef bytes request
        cdef Py_ssize_t sent
        cdef object engine = self.engine
        if self.single:
            request = self.payload
        else:
            endpoint = engine.picker.pick()
            fields.st.code = endpoint * CODE_SPAN
            item = engine.payloads[endpoint]  # its bytes, or what gives its next row
            request = item if type(item) is bytes else item()
        fields.st.sent = now
        sent = write(fields.st.fd, PyBytes_AS_STRING(request), PyBytes_GET_SIZE(request))
        if sent == PyBytes_GET_SIZE(request):
            return 0
        return self._sent(fields, request, sent, errno)

    cdef int _sent(self, ConnFields fields, bytes request, Py_ssize_t sent, int err) except -1:
        """``write`` of ``request`` on ``fields``' connection returned ``sent`` (``err``: its
        errno): what the socket did not take goes out when it is writable; a broken connection
        is lost on the loop's next turn, after the caller's bookkeeping."""
        engine = self.engine
        if sent < 0:
            if err != EAGAIN and err != EINTR:
                engine.loop.call_soon(engine.lost, fields, OSError(err, strerror(err).decode()))
                return 0
            sent = 0
        if sent < PyBytes_GET_SIZE(request):
            (<object>fields).write(request[sent:])  # the rest: when the socket is writable
        return 0

