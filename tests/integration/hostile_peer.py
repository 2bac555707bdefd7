#!/usr/bin/env python3
"""hostile_peer.py -- a hostile msync peer for t6000-hostile-peer.sh.

Plays side A (the initiator) of the wire protocol of docs/PROTOCOL.md
against `msync --server --restrict ROOT`, started here as a child with
pipes, and feeds it hostile input.  Python 3 standard library only.

    hostile_peer.py [options] CASE     run one case; exit 0 if it passed
    hostile_peer.py --list             the cases, one per line

Options:
    --msync PATH    the msync under test ($MSYNC)
    --root DIR      the store root the server is pinned to (--restrict)
    --watch DIR     a directory around the root that must not change
                    (but for the root itself): canaries live there
    --layout L      maildir (Maildir++, the default) or fs
    --outside FILE  a canary file whose bytes a case may look for on the
                    wire (a symlinked message must not be sent)
    -v              print every record sent and received

For every server run a case asserts, besides its own checks:
  * the server exited within the time limit (else it is killed: a hang),
    not by a signal, not with 86 (a sanitizer report), 126 or 127, and
    stderr holds no "AddressSanitizer", "LeakSanitizer" or
    "runtime error";
  * for hostile input: a non-zero exit status and, where the server got
    past the handshake, an ERROR record or a LOG of level 0 (or exit 76);
  * its peak RSS stayed under a bound, under an address-space limit
    (RLIMIT_AS, 512 MiB; not for sanitizer builds, which reserve far more
    virtual memory), and it never said "out of memory";
  * nothing under --watch outside the root changed: same files, same
    bytes, same symlinks, no new entries.
Every read from the server has a deadline (select), every loop is bounded.
"""

import ctypes
import ctypes.util
import errno
import hashlib
import os
import re
import resource
import select
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import time

# --- protocol constants (docs/PROTOCOL.md) ---------------------------

HELLO, BASE_MBOX, BASE_MSGS, BASE_END = 1, 2, 3, 4
MBOX, MSGS, LIST_END, DIGEST = 5, 6, 7, 8
MSG_BEGIN, MSG_DATA, MSG_END, MSG_SKIP = 9, 10, 11, 12
RESULT, DONE, LOG, ERROR, BYE, KEEPALIVE = 13, 14, 15, 16, 17, 18
REC_NAMES = {1: "HELLO", 2: "BASE_MBOX", 3: "BASE_MSGS", 4: "BASE_END",
             5: "MBOX", 6: "MSGS", 7: "LIST_END", 8: "DIGEST",
             9: "MSG_BEGIN", 10: "MSG_DATA", 11: "MSG_END", 12: "MSG_SKIP",
             13: "RESULT", 14: "DONE", 15: "LOG", 16: "ERROR", 17: "BYE",
             18: "KEEPALIVE"}
REC_MAX = {1: 65536, 2: 1085, 3: 3495940, 4: 0, 5: 1085, 6: 1772548,
           7: 0, 8: 12, 9: 20, 10: 262144, 11: 0, 12: 8, 13: 12292,
           14: 1600008, 15: 4104, 16: 4104, 17: 0, 18: 0}

MODE_TWOWAY, MODE_BACKUP, MODE_ONEWAY, MODE_LIST = 0, 1, 2, 3
O_DRY_RUN, O_FORCE, O_FULL, O_READ_ONLY, O_CREATE = 1, 2, 4, 8, 16
LAYOUTS = {"maildir": 0, "fs": 1}
FLAG_SEEN = 0x10

ERR_PROTO, ERR_TOOBIG, ERR_BADNAME, ERR_BADDATA = -4, -5, -6, -14
EXIT_DATAERR, EXIT_TEMPFAIL, EXIT_PROTOCOL = 65, 75, 76

LZ4_BLOCK_MAX = 65536
LZ4_CBLOCK_MAX = 65808

# --- limits of this harness ------------------------------------------

IO_TIMEOUT = 5.0        # seconds for any one wait on the server
EXIT_TIMEOUT = 5.0      # seconds for the server to exit after our EOF
MAX_RECORDS = 100000    # records read from one server, at most
AS_LIMIT = 512 << 20    # RLIMIT_AS for a normal build
RSS_LIMIT = 256 << 20   # peak RSS for a normal build
RSS_LIMIT_SAN = 1 << 30  # peak RSS for a sanitizer build


class CaseFail(Exception):
    """An assertion of a case failed."""


VERBOSE = False


def say(*a):
    print(*a, flush=True)


def esc(b, n=200):
    """Printable form of some bytes."""
    if isinstance(b, str):
        b = b.encode("utf-8", "surrogateescape")
    s = repr(bytes(b[:n]))[2:-1]
    return s + ("..." if len(b) > n else "")


# --- encoding --------------------------------------------------------

def u8(v):
    return struct.pack(">B", v)


def u32(v):
    return struct.pack(">I", v)


def i32(v):
    return struct.pack(">i", v)


def u64(v):
    return struct.pack(">Q", v)


def i64(v):
    return struct.pack(">q", v)


def sstr(b):
    if isinstance(b, str):
        b = b.encode("utf-8")
    return u32(len(b)) + b


def xxh64(data, seed):
    """XXH3-64 of data with seed, through libxxhash (needed since
    protocol 2: every record and LZ4 block header carries a check)."""
    f = xxh64_lib()
    if not f:
        raise SystemExit("hostile_peer.py: libxxhash not found")
    return f(bytes(data), len(data), seed)


def xxh64_lib():
    """XXH3_64bits_withSeed from libxxhash, or False."""
    return xxh_func("XXH3_64bits_withSeed", ctypes.c_uint64,
                    [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint64])


def rec(t, payload=b"", seq=0, length=None):
    """Record number seq (0 = the first after the handshake) as msync
    frames it: type, length, payload check, header check, payload.
    length: a false length in the header, sealed by the header check, so
    that the receiver's length limits are what is tested."""
    n = len(payload) if length is None else length
    h = struct.pack(">BII", t, n, xxh64(payload, seq) & 0xffffffff)
    return h + u32(xxh64(h, seq) & 0xffffffff) + payload


REC_HDR = 13            # type, length, payload check, header check


def enc_hello(mode=MODE_LIST, src=0, opts=O_READ_ONLY, path=b"", layout=0,
              include=(), exclude=()):
    p = u8(mode) + u8(src) + u32(opts) + sstr(path) + u8(layout)
    p += u32(len(include)) + b"".join(sstr(x) for x in include)
    p += u32(len(exclude)) + b"".join(sstr(x) for x in exclude)
    return p


def enc_mbox(name, guid=b"\x11" * 16, uv=(1, 0), modseq=(0, 0),
             unchanged=0, nmsgs=0, count=None, nbytes=0):
    if count is None:
        count = nmsgs
    return (sstr(name) + guid + u32(uv[0]) + u32(uv[1]) + u64(modseq[0]) +
            u64(modseq[1]) + u8(unchanged) + u32(nmsgs) + u32(count) +
            u64(nbytes))


def enc_msgs(msgs, count=None):
    """msgs: (uid, guid, flags, kw, size, date) tuples."""
    p = u32(len(msgs) if count is None else count)
    for uid, guid, flags, kw, size, date in msgs:
        p += u32(uid) + guid + u8(flags) + sstr(kw) + u64(size) + i64(date)
    return p


def enc_base_msgs(msgs, count=None):
    """msgs: (guid, uid_a, uid_b, flags_a, flags_b, kw_a, kw_b)."""
    p = u32(len(msgs) if count is None else count)
    for guid, ua, ub, fa, fb, ka, kb in msgs:
        p += guid + u32(ua) + u32(ub) + u8(fa) + u8(fb) + sstr(ka) + sstr(kb)
    return p


def enc_text(n, line):
    return i32(n) + sstr(line)


def enc_done(status=0, mbs=()):
    p = i32(status) + u32(len(mbs))
    for idx, uv, ms in mbs:
        p += u32(idx) + u32(uv) + u64(ms)
    return p


# --- decoding of what the server sends -------------------------------

class Reader:
    def __init__(self, b):
        self.b = bytes(b)
        self.o = 0

    def take(self, n):
        if n > len(self.b) - self.o:
            raise CaseFail("the server sent a short record: %s" %
                           esc(self.b))
        v = self.b[self.o:self.o + n]
        self.o += n
        return v

    def u8(self):
        return self.take(1)[0]

    def u32(self):
        return struct.unpack(">I", self.take(4))[0]

    def i32(self):
        return struct.unpack(">i", self.take(4))[0]

    def u64(self):
        return struct.unpack(">Q", self.take(8))[0]

    def i64(self):
        return struct.unpack(">q", self.take(8))[0]

    def str(self, maxlen=65536):
        n = self.u32()
        if n > maxlen:
            raise CaseFail("the server sent a string of %d bytes" % n)
        return self.take(n)

    def end(self):
        if self.o != len(self.b):
            raise CaseFail("the server sent a record with trailing bytes")


def dec_mbox(p):
    r = Reader(p)
    m = {"name": r.str(1024), "guid": r.take(16)}
    m["uv"] = (r.u32(), r.u32())
    m["modseq"] = (r.u64(), r.u64())
    m["unchanged"] = r.u8()
    m["nmsgs"] = r.u32()
    m["count"] = r.u32()
    m["bytes"] = r.u64()
    r.end()
    m["msgs"] = []
    return m


def dec_msgs(p):
    r = Reader(p)
    n = r.u32()
    if n > 1024:
        raise CaseFail("the server sent a MSGS record of %d entries" % n)
    out = []
    for _ in range(n):
        out.append((r.u32(), r.take(16), r.u8(), r.str(1690), r.u64(),
                    r.i64()))
    r.end()
    return out


def dec_text(p):
    r = Reader(p)
    n = r.i32()
    t = r.str(4096)
    r.end()
    return n, t


def dec_digest(p):
    r = Reader(p)
    v, n = r.u64(), r.u32()
    r.end()
    return v, n


def dec_results(p):
    r = Reader(p)
    n = r.u32()
    if n > 1024:
        raise CaseFail("the server sent a RESULT of %d entries" % n)
    out = [(r.u32(), r.u32(), r.i32()) for _ in range(n)]
    r.end()
    return out


def dec_done(p):
    r = Reader(p)
    st, n = r.i32(), r.u32()
    if n > 100000:
        raise CaseFail("the server sent a DONE of %d mailboxes" % n)
    mbs = [(r.u32(), r.u32(), r.u64()) for _ in range(n)]
    r.end()
    return st, mbs


# --- LZ4 (raw blocks, 64 KiB history) --------------------------------

def lz4_literal_block(data):
    """One LZ4 block holding data as literals only (always valid)."""
    n = len(data)
    if n < 15:
        out = bytearray([n << 4])
    else:
        out = bytearray([0xf0])
        k = n - 15
        while k >= 255:
            out.append(255)
            k -= 255
        out.append(k)
    out += data
    return bytes(out)


def lz4_hdr(clen, rlen, seq=0):
    """A block header: clen, rlen and their check (block number seq)."""
    h = u32(clen) + u32(rlen)
    return h + u32(xxh64(h, seq) & 0xffffffff)


def lz4_frame(data, rlen=None, clen=None, seq=0):
    """Our block number seq on the wire: header, literal-only LZ4 data."""
    blk = lz4_literal_block(data)
    return lz4_hdr(len(blk) if clen is None else clen,
                   len(data) if rlen is None else rlen, seq) + blk


class Lz4Dec:
    """Decoder of the server's stream; history = its last 64 KiB."""

    def __init__(self):
        self.hist = bytearray()

    def block(self, src, rlen):
        out = bytearray(self.hist)
        base = len(out)
        i, n = 0, len(src)
        for _ in range(len(src) + 1):   # each sequence eats >= 1 byte
            if i >= n:
                raise CaseFail("the server sent a truncated LZ4 block")
            tok = src[i]
            i += 1
            lit = tok >> 4
            if lit == 15:
                while True:
                    if i >= n:
                        raise CaseFail("bad LZ4 block from the server")
                    b = src[i]
                    i += 1
                    lit += b
                    if b != 255:
                        break
            if i + lit > n:
                raise CaseFail("bad LZ4 block from the server")
            out += src[i:i + lit]
            i += lit
            if i == n:
                break
            if i + 2 > n:
                raise CaseFail("bad LZ4 block from the server")
            off = src[i] | (src[i + 1] << 8)
            i += 2
            ml = tok & 15
            if ml == 15:
                while True:
                    if i >= n:
                        raise CaseFail("bad LZ4 block from the server")
                    b = src[i]
                    i += 1
                    ml += b
                    if b != 255:
                        break
            ml += 4
            if off == 0 or off > len(out) or len(out) - base + ml > rlen:
                raise CaseFail("bad LZ4 match from the server")
            start = len(out) - off
            if off >= ml:
                out += out[start:start + ml]
            else:
                for k in range(ml):
                    out.append(out[start + k])
        res = bytes(out[base:])
        if len(res) != rlen:
            raise CaseFail("LZ4 block from the server: %d bytes, said %d" %
                           (len(res), rlen))
        self.hist = bytearray((bytes(self.hist) + res)[-65536:])
        return res


# --- message GUIDs (XXH3-128 through libxxhash, when it is there) ----

class _H128(ctypes.Structure):
    _fields_ = [("low64", ctypes.c_uint64), ("high64", ctypes.c_uint64)]


_xxh_funcs = {}


def xxh_func(name, restype, argtypes):
    """The function name of libxxhash (cached), or False."""
    if name not in _xxh_funcs:
        _xxh_funcs[name] = False
        for lib in (ctypes.util.find_library("xxhash"), "libxxhash.so.0",
                    "libxxhash.so"):
            if not lib:
                continue
            try:
                f = getattr(ctypes.CDLL(lib), name)
            except (OSError, AttributeError):
                continue
            f.restype = restype
            f.argtypes = argtypes
            _xxh_funcs[name] = f
            break
    return _xxh_funcs[name]


def xxh_lib():
    return xxh_func("XXH3_128bits", _H128, [ctypes.c_char_p,
                                            ctypes.c_size_t])


def msg_guid(content):
    """The GUID msync gives content, or None without libxxhash."""
    f = xxh_lib()
    if not f:
        return None
    data = content.replace(b"\r\n", b"\n")
    h = f(data, len(data))
    return struct.pack(">QQ", h.high64, h.low64)


# --- the file-system watch -------------------------------------------

def snapshot(top, skip):
    """Every entry under top but skip: kind, mode and content/target."""
    snap = {}
    try:
        st = os.stat(skip) if skip else None
        skip = (st.st_dev, st.st_ino) if st else None
    except OSError:
        skip = None
    todo = [top]
    for _ in range(100000):
        if not todo:
            break
        d = todo.pop()
        try:
            names = sorted(os.listdir(d))
        except OSError as e:
            snap[d] = ("unreadable", str(e))
            continue
        for nm in names:
            p = os.path.join(d, nm)
            st = os.lstat(p)
            if skip and (st.st_dev, st.st_ino) == skip and \
                    stat.S_ISDIR(st.st_mode):
                continue
            if stat.S_ISLNK(st.st_mode):
                snap[p] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                snap[p] = ("dir", stat.S_IMODE(st.st_mode))
                todo.append(p)
            elif stat.S_ISREG(st.st_mode):
                with open(p, "rb") as fh:
                    h = hashlib.sha256(fh.read()).hexdigest()
                snap[p] = ("file", stat.S_IMODE(st.st_mode), st.st_size, h)
            else:
                snap[p] = ("other", st.st_mode)
    return snap


def snap_diff(a, b):
    out = []
    for p in sorted(set(a) | set(b)):
        if p not in b:
            out.append("removed: %s" % p)
        elif p not in a:
            out.append("appeared: %s %s" % (p, b[p][0]))
        elif a[p] != b[p]:
            out.append("changed: %s %r -> %r" % (p, a[p], b[p]))
    return out


# --- one server run --------------------------------------------------

class Ctx:
    def __init__(self, msync, root, watch, layout, outside):
        self.msync = msync
        self.root = os.path.abspath(root)
        self.watch = os.path.abspath(watch) if watch else None
        self.layout = LAYOUTS[layout]
        self.outside = outside
        self.san = is_sanitized(msync)
        self.token = "hostile-%d" % os.getpid()
        self.runs = 0


def is_sanitized(msync):
    if os.environ.get("MSYNC_TEST_SAN", "0") == "1":
        return True
    try:
        with open(msync, "rb") as fh:
            if b"__asan_init" in fh.read():
                return True
    except OSError:
        pass
    try:
        out = subprocess.run(["ldd", msync], capture_output=True,
                             timeout=10).stdout
        return b"libasan" in out or b"libubsan" in out
    except (OSError, subprocess.SubprocessError):
        return False


class Result:
    def __init__(self):
        self.rc = None          # exit status, or None
        self.sig = None         # killing signal, or None
        self.hung = False
        self.stderr = b""
        self.logs = []          # (level, text) of LOG records
        self.errors = []        # (code, text) of ERROR records
        self.records = []       # (type, payload) of all other records
        self.maxrss = 0         # bytes
        self.hs_line = None
        self.wrote_all = True   # False: the server stopped reading


class Server:
    """msync --server --restrict ROOT as a child, spoken to as side A."""

    def __init__(self, ctx, root=None, extra=()):
        self.ctx = ctx
        self.root = os.path.abspath(root or ctx.root)
        self.res = Result()
        self.inb = bytearray()      # wire bytes not yet parsed
        self.raw = bytearray()      # record bytes (after LZ4)
        self.queue = []             # parsed records not yet taken
        self.got_hs = False
        self.compressed = False     # the server's output is LZ4
        self.send_lz4 = False       # our output is LZ4
        self.eof = False
        self.broken = False         # the server closed its stdin
        self.nrec = 0
        self.seq_out = 0            # our next record's number
        self.blk_out = 0            # our next LZ4 block's number
        self.blk_in = 0             # the server's next LZ4 block's number
        self.dec = Lz4Dec()
        ctx.runs += 1
        self.before = snapshot(ctx.watch, self.root) if ctx.watch else None
        self.errf = tempfile.TemporaryFile()     # the server's stderr
        limit = None if ctx.san else AS_LIMIT

        def child_setup():
            if limit is not None:
                resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

        argv = [ctx.msync, "--server", "--restrict", self.root] + list(extra)
        # The server starts in the directory around the root, so a
        # relative path that escaped the root would land in the watch.
        cwd = ctx.watch or os.path.dirname(self.root)
        # A concurrent `make` may be relinking the binary: retry a bit.
        for tries in range(40):
            try:
                self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE,
                                             stdout=subprocess.PIPE,
                                             stderr=self.errf, cwd=cwd,
                                             preexec_fn=child_setup)
                break
            except OSError as e:
                if tries == 39 or e.errno not in (
                        errno.EACCES, errno.ETXTBSY, errno.ENOEXEC):
                    raise
                time.sleep(0.25)
        self.win = self.proc.stdin.fileno()
        self.rout = self.proc.stdout.fileno()
        os.set_blocking(self.win, False)
        os.set_blocking(self.rout, False)
        self.done = False
        self.t0 = time.monotonic()
        self.received = []          # MSG_DATA payloads B sent us
        self.offer_compress = False
        self.msg = MSG

    # -- low-level I/O, always with a deadline --

    def _read_some(self):
        try:
            b = os.read(self.rout, 65536)
        except BlockingIOError:
            return
        except OSError:
            b = b""
        if not b:
            self.eof = True
            return
        self.inb += b
        self._parse()

    def _parse(self):
        if not self.got_hs:
            nl = self.inb.find(b"\n")
            if nl < 0:
                if len(self.inb) > 256:
                    raise CaseFail("server handshake over 256 bytes: %s" %
                                   esc(self.inb))
                return
            self.res.hs_line = bytes(self.inb[:nl])
            del self.inb[:nl + 1]
            self.got_hs = True
            # Both say lz4 and we asked for compress: all that follows
            # the line is LZ4 blocks.
            self.compressed = self.offer_compress and \
                b" lz4" in self.res.hs_line
        if self.compressed:
            while len(self.inb) >= 12:
                clen, rlen, chk = struct.unpack(">III", self.inb[:12])
                if chk != xxh64(self.inb[:8], self.blk_in) & 0xffffffff:
                    raise CaseFail("server sent an LZ4 block header with "
                                   "a bad check")
                if not (1 <= clen <= LZ4_CBLOCK_MAX and
                        1 <= rlen <= LZ4_BLOCK_MAX):
                    raise CaseFail("server sent an LZ4 header %d/%d" %
                                   (clen, rlen))
                if len(self.inb) < 12 + clen:
                    break
                self.raw += self.dec.block(bytes(self.inb[12:12 + clen]),
                                           rlen)
                del self.inb[:12 + clen]
                self.blk_in += 1
        else:
            self.raw += self.inb
            del self.inb[:]
        while len(self.raw) >= REC_HDR:
            t, n, pchk, hchk = struct.unpack(">BIII", self.raw[:REC_HDR])
            if hchk != xxh64(self.raw[:9], self.nrec) & 0xffffffff:
                raise CaseFail("the server sent a record header with a "
                               "bad check")
            if t not in REC_MAX or n > REC_MAX[t]:
                raise CaseFail("the server sent a bad record header: "
                               "type %d, length %d" % (t, n))
            if len(self.raw) < REC_HDR + n:
                break
            p = bytes(self.raw[REC_HDR:REC_HDR + n])
            if pchk != xxh64(p, self.nrec) & 0xffffffff:
                raise CaseFail("the server sent a record with a bad "
                               "check")
            del self.raw[:REC_HDR + n]
            self.nrec += 1
            if self.nrec > MAX_RECORDS:
                raise CaseFail("the server sent over %d records" %
                               MAX_RECORDS)
            self._got(t, p)

    def _got(self, t, p):
        if t == KEEPALIVE:
            return
        if t == LOG:
            n, text = dec_text(p)
            self.res.logs.append((n, text))
            if VERBOSE or n == 0:
                say("  <- LOG %d: %s" % (n, esc(text, 300)))
            return
        if t == ERROR:
            n, text = dec_text(p)
            self.res.errors.append((n, text))
            say("  <- ERROR %d: %s" % (n, esc(text, 300)))
        elif VERBOSE:
            say("  <- %s (%d bytes)" % (REC_NAMES[t], len(p)))
        self.res.records.append((t, p))
        self.queue.append((t, p))

    def pump(self, deadline, out=None):
        """Reads what comes; writes out (a memoryview) if given.
        Returns the bytes written."""
        wrote = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return wrote
            rl = [] if self.eof else [self.rout]
            wl = [self.win] if (out is not None and wrote < len(out) and
                                not self.broken) else []
            if not rl and not wl:
                return wrote
            r, w, _ = select.select(rl, wl, [], min(left, 0.5))
            if r:
                self._read_some()
            if w:
                try:
                    wrote += os.write(self.win, out[wrote:wrote + 65536])
                except BlockingIOError:
                    pass
                except (BrokenPipeError, ConnectionResetError):
                    self.broken = True
            if out is None and (r or self.eof):
                return wrote
            if out is not None and (wrote >= len(out) or self.broken):
                return wrote

    def send_raw(self, data, timeout=IO_TIMEOUT, quiet=False):
        """Writes bytes; False if the server stopped reading."""
        if VERBOSE and not quiet:
            say("  -> %d raw bytes: %s" % (len(data), esc(data, 60)))
        mv = memoryview(data)
        deadline = time.monotonic() + timeout
        off = 0
        for _ in range(100000):
            if off >= len(mv) or self.broken:
                break
            if time.monotonic() >= deadline:
                break
            off += self.pump(deadline, mv[off:])
        if off < len(mv):
            self.res.wrote_all = False
            if VERBOSE:
                say("  (the server took %d of %d bytes)" % (off, len(mv)))
            return False
        return True

    def send(self, t, payload=b"", length=None):
        """One record (length: a false header length)."""
        n = len(payload) if length is None else length
        data = self.rec(t, payload, length)
        if VERBOSE:
            say("  -> %s len %d (%d bytes)" % (REC_NAMES.get(t, t), n,
                                               len(payload)))
        if self.send_lz4:
            out = b""
            for i in range(0, len(data), LZ4_BLOCK_MAX):
                out += self.lz4(data[i:i + LZ4_BLOCK_MAX])
            data = out
        return self.send_raw(data, quiet=True)

    def rec(self, t, payload=b"", length=None):
        """Our next record, framed (see rec()); it gets the next number."""
        self.seq_out += 1
        return rec(t, payload, self.seq_out - 1, length)

    def lz4(self, data, **kw):
        """Our next LZ4 block (see lz4_frame)."""
        self.blk_out += 1
        return lz4_frame(data, seq=self.blk_out - 1, **kw)

    def recv(self, timeout=IO_TIMEOUT):
        """The next record other than LOG, or None at EOF or timeout."""
        deadline = time.monotonic() + timeout
        for _ in range(100000):
            if self.queue:
                return self.queue.pop(0)
            if self.eof or time.monotonic() >= deadline:
                return None
            self.pump(deadline)
        return None

    def expect(self, want, timeout=IO_TIMEOUT):
        r = self.recv(timeout)
        if r is None:
            raise CaseFail("expected %s from the server, got %s" %
                           (REC_NAMES[want],
                            "end of stream" if self.eof else "nothing"))
        if r[0] != want:
            extra = ""
            if r[0] == ERROR:
                extra = ": %s" % esc(dec_text(r[1])[1])
            raise CaseFail("expected %s from the server, got %s%s" %
                           (REC_NAMES[want], REC_NAMES[r[0]], extra))
        return r[1]

    # -- protocol steps --

    # Protocol 2 on purpose: the hostile peer checks and writes every
    # record's payload check, MSG_DATA's too, so the real msync's
    # protocol-2 side (kept for older peers) stays tested; protocol 3
    # (MSG_DATA without its own check) is what t6100's relay sees.
    def handshake(self, line=b"msync 2 2 lz4\n", compress=False):
        if compress:
            line = b"msync 2 2 lz4 compress\n"
        self.offer_compress = compress
        self.send_raw(line)
        deadline = time.monotonic() + IO_TIMEOUT
        while not self.got_hs and not self.eof and \
                time.monotonic() < deadline:
            self.pump(deadline)
        if not self.got_hs:
            raise CaseFail("no handshake line from the server")
        hs = self.res.hs_line.decode("ascii", "replace")
        if not re.match(r"^msync 2 [1-9][0-9]*( [a-z0-9_-]+)*$", hs):
            raise CaseFail("odd handshake from the server: %r" % hs)
        if compress and " lz4" in hs:
            self.send_lz4 = True
        return hs

    def read_view(self):
        """B's MBOX/MSGS records up to LIST_END: {name: mbox dict}."""
        view = {}
        cur = None
        for _ in range(MAX_RECORDS):
            r = self.recv()
            if r is None:
                raise CaseFail("the server's view ended early")
            t, p = r
            if t == LIST_END:
                return view
            if t == MBOX:
                cur = dec_mbox(p)
                view[cur["name"]] = cur
            elif t == MSGS and cur is not None:
                cur["msgs"] += dec_msgs(p)
            else:
                raise CaseFail("unexpected %s in the server's view%s" % (
                    REC_NAMES[t], (": " + esc(dec_text(p)[1]))
                    if t == ERROR else ""))
        raise CaseFail("the server's view does not end")

    def list_session(self):
        """A well-formed --list session: HELLO (LIST), view, BYE."""
        self.send(HELLO, enc_hello(MODE_LIST, 0, O_READ_ONLY, b"",
                                   self.ctx.layout))
        view = self.read_view()
        self.send(BYE)
        return view

    def sync_start(self, layout=None, base=(), opts=O_CREATE):
        """HELLO of a two-way sync, the first part of the base (records
        base: BASE_MBOX headers with nmsgs 0), BASE_END; B's view."""
        self.send(HELLO, enc_hello(MODE_TWOWAY, 0, opts, b"",
                                   self.ctx.layout if layout is None
                                   else layout))
        for t, p in base:
            self.send(t, p)
        self.send(BASE_END)
        return self.read_view()

    def send_view(self, mboxes, base=()):
        """mboxes: dicts name, guid, uv, msgs (uid, guid, ...).  Then
        the second part of the base (records base) and its BASE_END."""
        for m in mboxes:
            self.send(MBOX, enc_mbox(m["name"], m["guid"], (m["uv"], 0),
                                     (0, 0), 0, len(m["msgs"]),
                                     len(m["msgs"]),
                                     sum(x[4] for x in m["msgs"])))
            for i in range(0, len(m["msgs"]), 1024):
                self.send(MSGS, enc_msgs(m["msgs"][i:i + 1024]))
        self.send(LIST_END)
        for t, p in base:
            self.send(t, p)
        self.send(BASE_END)

    def agree(self, expect_nact=None):
        """Reads B's DIGEST and answers with the same: (value, nact)."""
        v, n = dec_digest(self.expect(DIGEST))
        if expect_nact is not None and n != expect_nact:
            raise CaseFail("the server planned %d actions, this test "
                           "expected %d" % (n, expect_nact))
        self.send(DIGEST, u64(v) + u32(n))
        return v, n

    def finish(self):
        """Closes our side, drains the server, waits for it (killing
        it after EXIT_TIMEOUT).  Returns the Result."""
        if self.done:
            return self.res
        self.done = True
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        deadline = time.monotonic() + EXIT_TIMEOUT
        try:
            while not self.eof and time.monotonic() < deadline:
                self.pump(deadline)
        except CaseFail as e:
            say("  (while draining: %s)" % e)
        status = None
        ru = None
        # Reaped here with wait4 (for its rusage), never through Popen
        # (whose kill() and poll() would reap it first).
        while time.monotonic() < deadline:
            pid, status, ru = os.wait4(self.proc.pid, os.WNOHANG)
            if pid != 0:
                break
            status = None
            time.sleep(0.002)
        if status is None:
            self.res.hung = True
            self._sigkill()
            _, status, ru = os.wait4(self.proc.pid, 0)
        self.proc.returncode = 0    # reaped: keep Popen from waiting
        try:
            self.proc.stdout.close()
        except OSError:
            pass
        if os.WIFSIGNALED(status):
            self.res.sig = os.WTERMSIG(status)
        else:
            self.res.rc = os.WEXITSTATUS(status)
        self.res.maxrss = ru.ru_maxrss * 1024 if ru else 0
        self.errf.seek(0)
        self.res.stderr = self.errf.read(1 << 20)
        self.errf.close()
        self.after = snapshot(self.ctx.watch, self.root) \
            if self.ctx.watch else None
        return self.res

    def _sigkill(self):
        try:
            os.kill(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass

    def kill(self):
        """Ends a run that failed on our side: SIGKILL, reap, and say
        how the server had ended (it may have died first)."""
        if not self.done:
            self._sigkill()
            self.finish()
            summarize(self, "(our side failed) ")


# --- assertions ------------------------------------------------------

def summarize(s, tag=""):
    """Prints how a server run ended and its stderr."""
    res = s.res
    say("  %sserver: %s after %.2f s, peak RSS %d KiB, %d LOG, %d ERROR" % (
        tag, "killed by signal %d" % res.sig if res.sig is not None
        else "exit %d" % res.rc, time.monotonic() - s.t0,
        res.maxrss // 1024, len(res.logs), len(res.errors)))
    for line in res.stderr.decode("utf-8", "replace").splitlines()[:20]:
        say("  %sstderr: %s" % (tag, line))


def check_run(s, hostile=True, codes=None, need_msg=True, msg_re=None,
              what=""):
    """The checks every server run gets (see the top of the file).
    hostile: a non-zero exit is required; codes: the allowed statuses;
    need_msg: an ERROR or level-0 LOG is required unless it exited 76."""
    res = s.finish()
    fails = []
    tag = "[%s] " % what if what else ""
    summarize(s, tag)
    if res.hung:
        fails.append("the server did not exit within %.0f s of our EOF "
                     "(a hang; killed)" % EXIT_TIMEOUT)
    elif res.sig is not None:
        fails.append("the server was killed by signal %d" % res.sig)
    elif res.rc in (86, 126, 127) or res.rc > 128:
        fails.append("the server crashed: exit %d" % res.rc)
    for pat in (b"AddressSanitizer", b"LeakSanitizer", b"runtime error",
                b"MemorySanitizer", b"UndefinedBehaviorSanitizer"):
        if pat in res.stderr:
            fails.append("a sanitizer report on stderr (%s)" %
                         pat.decode())
    texts = [t for _, t in res.errors] + [t for n, t in res.logs if n == 0]
    if any(b"out of memory" in t for t in texts) or \
            b"out of memory" in res.stderr:
        fails.append("the server ran out of memory")
    lim = RSS_LIMIT_SAN if s.ctx.san else RSS_LIMIT
    if res.maxrss > lim:
        fails.append("peak RSS %d MiB over %d MiB" % (res.maxrss >> 20,
                                                     lim >> 20))
    if not fails and res.rc is not None:
        if hostile and res.rc == 0:
            fails.append("the server took hostile input and exited 0")
        elif codes is not None and res.rc not in codes:
            fails.append("exit %d, expected one of %s" % (res.rc,
                                                          sorted(codes)))
        elif hostile and need_msg and res.rc != EXIT_PROTOCOL and \
                not texts:
            fails.append("exit %d without an ERROR record or an error LOG"
                         % res.rc)
        if msg_re is not None and not any(
                re.search(msg_re, t.decode("utf-8", "replace"))
                for t in texts + [res.stderr]):
            fails.append("no message matching /%s/" % msg_re)
    if s.before is not None:
        d = snap_diff(s.before, s.after)
        if d:
            fails.append("outside the root: " + "; ".join(d[:10]))
    if fails:
        raise CaseFail(tag + "; ".join(fails))
    return res


def check_no_token(ctx):
    """No path named with this run's token exists anywhere we can think
    of (the names' targets, resolved from the root and the cwd)."""
    hits = []
    for top in ("/", "/etc", "/tmp", os.path.dirname(ctx.root),
                os.path.dirname(os.path.dirname(ctx.root)), ctx.watch or "/",
                os.path.dirname(ctx.watch or "/")):
        try:
            for nm in os.listdir(top):
                if ctx.token in nm:
                    hits.append(os.path.join(top, nm))
        except OSError:
            pass
    if hits:
        raise CaseFail("files named by a hostile name appeared: %s" %
                       ", ".join(sorted(set(hits))))


def list_files(root):
    """Message files of the root's INBOX: {sub/name: bytes}."""
    out = {}
    for sub in ("cur", "new", "tmp"):
        d = os.path.join(root, sub)
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for nm in names:
            p = os.path.join(d, nm)
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as fh:
                    out[sub + "/" + nm] = fh.read()
    return out


# --- the cases -------------------------------------------------------

CASES = {}


def case(name, doc):
    def reg(f):
        CASES[name] = (f, doc)
        return f
    return reg


def run_hostile(ctx, what, steps, codes=None, need_msg=True, msg_re=None,
                root=None, compress=False, handshake=True):
    """One server run: handshake, steps(s), then the checks."""
    say("- %s" % what)
    s = Server(ctx, root)
    try:
        if handshake:
            s.handshake(compress=compress)
        steps(s)
    except BaseException:
        # The run did not go as the case meant.
        s.kill()
        raise
    return check_run(s, True, codes, need_msg, msg_re, what)


def mirror(view):
    """Our mailboxes as B has them (same names, GUIDs, messages), so
    they plan no action: a list, INBOX first."""
    if b"INBOX" not in view:
        raise CaseFail("the server's view has no INBOX")
    return [{"name": n, "guid": m["guid"], "uv": m["uv"][0] or 1,
             "msgs": list(m["msgs"])}
            for n, m in sorted(view.items(), key=lambda x: x[0] != b"INBOX")]


MSG = (b"From: a@example.org\nTo: b@example.org\nSubject: hostile\n\n"
       b"a message from the hostile peer\n")


_nonce = [0]


def unique_msg():
    """MSG with a header no other message of this run has, so that its
    GUID is new to the server (else B copies it locally)."""
    _nonce[0] += 1
    return MSG.replace(b"\n\n", b"\nX-Nonce: %d.%d.%f\n\n" % (
        os.getpid(), _nonce[0], time.time()), 1)


def new_msg(uid=1, content=MSG, guid=None, flags=FLAG_SEEN, kw=b""):
    g = guid if guid is not None else (msg_guid(content) or
                                       hashlib.md5(content).digest())
    return (uid, g, flags, kw, len(content), 1700000000)


@case("baseline-list", "a well-formed --list session names the mailboxes "
      "the test created (proves the client speaks the protocol)")
def c_baseline_list(ctx, args):
    want = set(a.encode() for a in args)
    for compress in (False, True):
        say("- LIST, compression %s" % ("on" if compress else "off"))
        s = Server(ctx)
        try:
            s.handshake(compress=compress)
            view = s.list_session()
        except CaseFail:
            s.kill()
            raise
        res = check_run(s, hostile=False, codes={0},
                        what="list" + (" lz4" if compress else ""))
        names = set(view)
        say("  mailboxes: %s" % ", ".join(sorted(esc(n) for n in names)))
        if names != want:
            raise CaseFail("the server listed %s, expected %s" %
                           (sorted(names), sorted(want)))
        if res.errors:
            raise CaseFail("ERROR records in a good session")


@case("baseline-copy", "a well-formed sync that copies one message to the "
      "server (needs libxxhash for the GUID)")
def c_baseline_copy(ctx, args):
    if not xxh_lib():
        say("skip: libxxhash not loadable; no GUIDs")
        return 0
    before = list_files(ctx.root)
    say("- two-way sync, one new message from A")
    s = Server(ctx)
    try:
        s.handshake()
        view = s.sync_start()
        mbs = mirror(view)
        inbox = mbs[0]
        content = unique_msg()
        m = new_msg(uid=max([x[0] for x in inbox["msgs"]] + [0]) + 1,
                    content=content)
        inbox["msgs"].append(m)
        s.send_view(mbs)
        v, n = s.agree(expect_nact=1)
        s.send(MSG_BEGIN, u32(0) + u64(len(content)) + i64(m[5]))
        s.send(MSG_DATA, content)
        s.send(MSG_END)
        results = []
        for _ in range(100):
            t, p = s.recv() or (None, None)
            if t == RESULT:
                results += dec_results(p)
            elif t == DONE:
                st, mbs = dec_done(p)
                break
            else:
                raise CaseFail("expected RESULT/DONE, got %s" %
                               REC_NAMES.get(t, t))
        if results != [(0, results[0][1] if results else 0, 0)] or st != 0:
            raise CaseFail("results %r, done status %d" % (results, st))
        # What the real client sends (brain_client): its DONE, then,
        # after committing its state, BYE.
        s.send(DONE, enc_done(0, []))
        s.send(BYE)
    except CaseFail:
        s.kill()
        raise
    # The exit status is clean-exit's business.
    check_run(s, hostile=False, what="copy")
    after = list_files(ctx.root)
    new = {k: v for k, v in after.items() if k not in before}
    if list(new.values()) != [content] or not list(new)[0].startswith("cur/"):
        raise CaseFail("expected the message in cur/, got %r" % list(new))
    say("  saved as %s" % list(new)[0])
    return 0


@case("clean-exit", "a complete session where nothing changes (DONE <-> "
      "DONE, then BYE) ends with exit 0")
def c_clean_exit(ctx, args):
    say("- two-way sync of identical views")
    s = Server(ctx)
    try:
        s.handshake()
        view = s.sync_start()
        s.send_view(mirror(view))
        s.agree(expect_nact=0)
        finish_session(s)
    except CaseFail:
        s.kill()
        raise
    res = check_run(s, hostile=False, what="in sync")
    if res.rc != 0:
        raise CaseFail("a complete, correct session, but the server exited "
                       "%d (its last words: %s)" % (
                           res.rc, "; ".join(esc(t) for n, t in res.logs
                                             if n == 0) or "none"))
    return 0


def finish_session(s):
    """The end of a session as brain_client does it: read B's RESULT
    records and DONE, send our DONE, then BYE.  Returns (results, status)."""
    results, st = [], None
    for _ in range(100000):
        r = s.recv()
        if r is None:
            raise CaseFail("the session ended before the server's DONE")
        if r[0] == RESULT:
            results += dec_results(r[1])
        elif r[0] in (MSG_BEGIN, MSG_END, MSG_SKIP):
            pass    # B's copies to A: only their content matters here
        elif r[0] == MSG_DATA:
            s.received.append(r[1])
        elif r[0] == DONE:
            st, _ = dec_done(r[1])
            break
        elif r[0] == ERROR:
            raise CaseFail("ERROR from the server: %s" %
                           esc(dec_text(r[1])[1]))
        else:
            raise CaseFail("expected RESULT or DONE, got %s" %
                           REC_NAMES[r[0]])
    s.send(DONE, enc_done(0, []))
    s.send(BYE)
    return results, st


# The names of the name cases: each goes into a MBOX record (A's view)
# and into a BASE_MBOX record (A's base); the server must refuse both
# before it builds a path.
NAME_SETS = {
    "dotdot": [b"..", b".", b"../x", b"a/..", b"a/../../TOKEN",
               b"../../TOKEN", b"a/./b", b"./a", b"a/../../../etc/TOKEN",
               b"\xc0\xae\xc0\xae/TOKEN",       # overlong "..": bad UTF-8
               b"a\xc0\xafb"],                  # overlong "/"
    "absolute": [b"/etc/TOKEN", b"/TOKEN", b"/", b"//etc", b"a//b",
                 b"a/", b"/tmp/../etc/TOKEN"],
    "nul": [b"\x00", b"a\x00b", b"INBOX\x00/../TOKEN", b"a\x00"],
    "control": [b"a\nb", b"a\rb", b"\tTOKEN", b"a\x1b[2Jb", b"a\x7fb",
                "a\u0085b".encode(), "a\u009bb".encode(), b"\x01",
                b"\xff\xfe", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"],
    "overlong": [b"a" * 1025, b"a/" * 512 + b"b", b"x" * 4096,
                 b"a" * 65000],
    "deep": [b"/".join([b"a"] * 33), b"/".join([b"d"] * 200),
             b"/".join([b"ab"] * 33)],
}


def names_for(ctx, key):
    return [n.replace(b"TOKEN", ctx.token.encode()) for n in NAME_SETS[key]]


def hostile_name_runs(ctx, key):
    for name in names_for(ctx, key):
        # In A's view (MBOX), after a proper start.
        def in_view(s, name=name):
            view = s.sync_start()
            s.send(MBOX, enc_mbox(name, b"\x42" * 16))
            s.send(LIST_END)
        # In A's base (BASE_MBOX).
        def in_base(s, name=name):
            s.send(HELLO, enc_hello(MODE_TWOWAY, 0, O_CREATE, b"",
                                    ctx.layout))
            s.send(BASE_MBOX, enc_mbox(name, b"\x43" * 16, (1, 1), (1, 1)))
            s.send(BASE_END)
        for where, steps in (("MBOX", in_view), ("BASE_MBOX", in_base)):
            run_hostile(ctx, "%s name %s" % (where, esc(name, 60)), steps,
                        codes={EXIT_DATAERR, EXIT_PROTOCOL})
    check_no_token(ctx)
    return 0


for _k, _doc in (
        ("dotdot", "mailbox names with . and .. levels (also as overlong "
         "UTF-8) are refused"),
        ("absolute", "absolute mailbox names and empty levels are refused"),
        ("nul", "mailbox names with NUL bytes are refused"),
        ("control", "mailbox names with control characters or bad UTF-8 "
         "are refused"),
        ("overlong", "mailbox names over 1024 bytes are refused"),
        ("deep", "mailbox names of more than 32 levels are refused")):
    CASES["name-" + _k] = ((lambda k: lambda ctx, args:
                            hostile_name_runs(ctx, k))(_k), _doc)


@case("name-hello", "hostile HELLO store paths and patterns: refused, or "
      "ignored for the --restrict root")
def c_name_hello(ctx, args):
    want = set(a.encode() for a in args)
    tok = ctx.token.encode()
    # --restrict pins the root: a path in HELLO is ignored.
    for path in (b"/etc", b"../../" + tok, b"/", b"~", b"~root/.ssh"):
        say("- LIST with HELLO path %s" % esc(path))
        s = Server(ctx)
        try:
            s.handshake()
            s.send(HELLO, enc_hello(MODE_LIST, 0, O_READ_ONLY, path,
                                    ctx.layout))
            view = s.read_view()
            s.send(BYE)
        except CaseFail:
            s.kill()
            raise
        check_run(s, hostile=False, codes={0}, what="path")
        if set(view) != want:
            raise CaseFail("HELLO path %s: the server listed %s, not the "
                           "--restrict root" % (esc(path), sorted(view)))
    # Invalid strings are refused at once.
    bad = [(b"a\x00b", (), ()), (b"a\nb", (), ()), (b"\xff", (), ()),
           (b"x" * 4097, (), ()), (b"", (b"",), ()), (b"", (b"a\x00",), ()),
           (b"", (), (b"x" * 1025,)), (b"", (b"\x1b",), ())]
    for path, inc, exc in bad:
        run_hostile(ctx, "HELLO path %s include %r exclude %r" % (
            esc(path, 20), [esc(x, 20) for x in inc],
            [esc(x, 20) for x in exc]),
            lambda s, p=path, i=inc, e=exc: s.send(
                HELLO, enc_hello(MODE_LIST, 0, O_READ_ONLY, p, ctx.layout,
                                 i, e)),
            codes={EXIT_DATAERR, EXIT_PROTOCOL})
    # Bad enums and option bits.
    for what, p in (
            ("mode 4", enc_hello(4)), ("mode 255", enc_hello(255)),
            ("src 2", enc_hello(MODE_LIST, 2)),
            ("opts 0x80000000", enc_hello(MODE_LIST, 0, 0x80000000)),
            # FPRINT (0x20) is protocol 4's; this harness speaks 2.
            ("opts 0x20 below protocol 4", enc_hello(MODE_LIST, 0, 0x20)),
            ("opts 0x40", enc_hello(MODE_LIST, 0, 0x40)),
            ("layout 255", enc_hello(MODE_LIST, 0, O_READ_ONLY, b"", 255)),
            ("trailing byte", enc_hello() + b"\x00"),
            ("short", enc_hello()[:-3]),
            ("empty", b"")):
        run_hostile(ctx, "HELLO " + what,
                    lambda s, p=p: s.send(HELLO, p), codes={EXIT_PROTOCOL})
    check_no_token(ctx)
    return 0


def plan_copy(s, name=None, content=None, guid=None, kw=b""):
    """A sync whose plan (as B computes it) has one COPY to B: our INBOX
    mirrors B's, plus one new message, in INBOX or in a new mailbox
    name (B creates it first).  Returns (copy action index, msg, nact);
    s.msg is the content (unique unless given)."""
    if content is None:
        content = unique_msg()
    s.msg = content
    view = s.sync_start()
    mboxes = mirror(view)
    inbox = mboxes[0]
    m = new_msg(content=content, guid=guid, kw=kw)
    if name is None:
        inbox["msgs"].append((max([x[0] for x in inbox["msgs"]] + [0]) + 1,)
                             + m[1:])
        m = inbox["msgs"][-1]
    else:
        have = [x for x in mboxes if x["name"] == name]
        if have:
            m = (max([x[0] for x in have[0]["msgs"]] + [0]) + 1,) + m[1:]
            have[0]["msgs"].append(m)
        else:
            mboxes.append({"name": name,
                           "guid": hashlib.md5(name).digest(), "uv": 7,
                           "msgs": [m]})
    s.send_view(mboxes)
    v, n = s.agree()
    return n - 1, m, n


@case("symlink-mailbox", "a mailbox directory symlinked out of the root is "
      "not listed and not written through")
def c_symlink_mailbox(ctx, args):
    """args: the root's mailbox names (listed), then 'via NAME...': names
    of symlinks in the root (Maildir++: .NAME, fs: NAME) to a canary
    Maildir outside."""
    i = args.index("via") if "via" in args else len(args)
    want, links = args[:i], args[i + 1:]
    say("- LIST")
    s = Server(ctx)
    try:
        s.handshake()
        view = s.list_session()
    except CaseFail:
        s.kill()
        raise
    check_run(s, hostile=False, what="list")
    say("  listed: %s" % ", ".join(sorted(esc(n) for n in view)))
    for l in links:
        for n in view:
            if n == l.encode() or n.startswith(l.encode() + b"/"):
                raise CaseFail("the server listed %s, behind a symlink" %
                               esc(n))
    if set(view) != set(x.encode() for x in want):
        raise CaseFail("listed %s, expected %s" % (sorted(view), want))
    # Now make B create/fill a mailbox of that name: it must not write
    # through the link (the watch would see it).
    for l in links:
        for name in (l, l + "/sub"):
            def steps(s, name=name):
                idx, m, n = plan_copy(s, name.encode())
                s.send(MSG_BEGIN, u32(idx) + u64(len(s.msg)) + i64(m[5]))
                s.send(MSG_DATA, s.msg)
                s.send(MSG_END)
                say("  results %r, status %r" % finish_session(s))
            say("- sync creating %s with a message" % name)
            s = Server(ctx)
            try:
                s.handshake()
                steps(s)
            except CaseFail as e:
                say("  (%s)" % e)
            check_run(s, hostile=False, what="sync " + name)
    return 0


@case("symlink-inside", "symlinked cur/, tmp/, message files and control "
      "files (msync.index, dovecot-keywords) are not followed")
def c_symlink_inside(ctx, args):
    """The root has symlinks the test planted (see the script); copies
    into INBOX and the folders box, box2, box3 (with a keyword, so that
    dovecot-keywords is written) must not write through them, and no
    content behind a link may be listed or reach the wire."""
    canary = b""
    if ctx.outside:
        with open(ctx.outside, "rb") as fh:
            canary = fh.read()
    say("- LIST")
    s = Server(ctx)
    try:
        s.handshake()
        view = s.list_session()
    except CaseFail:
        s.kill()
        raise
    check_run(s, hostile=False, what="list")
    for n, m in view.items():
        say("  listed %s: %d messages" % (esc(n), m["nmsgs"]))
    real = len([k for k in list_files(ctx.root) if not k.startswith("tmp/")])
    if view[b"INBOX"]["nmsgs"] != real:
        raise CaseFail("INBOX has %d message files, the server listed %d: "
                       "a symlinked one counted" % (real,
                                                    view[b"INBOX"]["nmsgs"]))
    g = msg_guid(canary) if canary else None
    for n, m in view.items():
        if g and any(x[1] == g for x in m["msgs"]):
            raise CaseFail("the server listed the canary behind a symlink "
                           "in %s" % esc(n))
    # B has messages A lacks: it sends them (a first sync is a union).
    # Nothing behind a symlinked message file may come.
    say("- sync: the server sends what it has")
    s = Server(ctx)
    try:
        s.handshake()
        view = s.sync_start()
        mbs = mirror(view)
        for mb in mbs:
            mb["msgs"] = []
        s.send_view(mbs)
        s.agree()
        say("  results %r, status %r" % finish_session(s))
    except CaseFail as e:
        say("  (%s)" % e)
    check_run(s, hostile=False, what="sync")
    got = b"".join(s.received)
    say("  received %d bytes of content" % len(got))
    if not got:
        raise CaseFail("the server sent no message at all: this check "
                       "proves nothing")
    if canary and canary in got:
        raise CaseFail("the server sent the content of %s, which is "
                       "outside its root, behind a symlink" % ctx.outside)
    # A message into INBOX (with a keyword: dovecot-keywords is a link),
    # into box (cur/ is a link), box2 (tmp/ is a link) and box3
    # (msync.index, maildirfolder and dovecot-keywords are links).
    for name in (None, b"box", b"box2", b"box3"):
        say("- sync: a message into %s" % (esc(name) if name else "INBOX"))
        s = Server(ctx)
        try:
            s.handshake()
            idx, m, n = plan_copy(s, name, kw=b"hostile")
            s.send(MSG_BEGIN, u32(idx) + u64(len(s.msg)) + i64(m[5]))
            s.send(MSG_DATA, s.msg)
            s.send(MSG_END)
            say("  results %r, status %r" % finish_session(s))
        except CaseFail as e:
            say("  (%s)" % e)
        check_run(s, hostile=False, what="sync")
    return 0


EXTREME = [
    b"a" * 1024,                                    # one long level
    "\u00e9".encode() * 512,                         # 2-byte chars
    "\u20ac".encode() * 341,                         # 3-byte chars
    "\U0001f600".encode() * 256,                     # UTF-7 surrogates
    b"/".join([b"abcdefghijklmnopqrstuvwxyz01234"] * 32),  # 32 levels
    b"/".join(["\u00e9".encode() * 15] * 32),
    b"/".join([b"&"] * 32), b"&-", b"&AGE-", b"&&&",  # UTF-7 look-alikes
    b"cur", b"new", b"tmp", b"msync.lock", b"msync.index",
    b"dovecot-keywords", b"maildirfolder", b".hidden", b"a/cur",
    b"a/tmp", b"a.b", b"..a", b"a..", b"INBOX/cur", b"inbox", b"INBOX/x",
    b"Work/..x", b"~", b"~root", b"$HOME", b"a\\b", b"*", b"%",
    "\u2024\u2024".encode(),                          # one-dot leader
    "\uff0e\uff0e".encode(),                          # fullwidth dots
    "a\u2215b".encode(),                             # division slash
]


@case("name-extreme", "legal but extreme mailbox names: the server may "
      "create or refuse them, but only inside its root")
def c_name_extreme(ctx, args):
    before = list_files(ctx.root)
    for name in EXTREME:
        def steps(s, name=name):
            view = s.sync_start()
            mbs = mirror(view)
            if name not in view:
                mbs.append({"name": name, "guid": hashlib.md5(name).digest(),
                            "uv": 3, "msgs": []})
            s.send_view(mbs)
            s.agree()
            say("  results %r, status %r" % finish_session(s))
        say("- a new mailbox %s" % esc(name, 60))
        s = Server(ctx)
        try:
            s.handshake()
            steps(s)
        except CaseFail as e:
            say("  (%s)" % e)
        check_run(s, hostile=False, what="extreme")
    for sub in ("cur", "new", "tmp"):
        d = os.path.join(ctx.root, sub)
        dirs = [x for x in os.listdir(d) if os.path.isdir(os.path.join(d, x))]
        if dirs:
            raise CaseFail("directories appeared in INBOX's %s/: %s" %
                           (sub, dirs))
    after = list_files(ctx.root)
    if {k: v for k, v in after.items() if not k.startswith("tmp/")} != \
            {k: v for k, v in before.items() if not k.startswith("tmp/")}:
        raise CaseFail("INBOX's messages changed")
    # Still a store the server can list.
    s = Server(ctx)
    try:
        s.handshake()
        view = s.list_session()
    except CaseFail:
        s.kill()
        raise
    check_run(s, hostile=False, codes={0}, what="list afterwards")
    say("  now listed: %s" % ", ".join(esc(n, 40) for n in sorted(view)))
    return 0


def base_of(m, name=None):
    """A base (both parts) in which B's mailbox m was synced as is:
    (header record, part-2 records)."""
    name = m["name"] if name is None else name
    hdr = (BASE_MBOX, enc_mbox(name, m["guid"], (m["uv"][0], m["uv"][0]),
                               (0, 0)))
    ents = [(x[1], x[0], x[0], x[2], x[2], x[3], x[3]) for x in m["msgs"]]
    part2 = [(BASE_MBOX, enc_mbox(name, m["guid"], (m["uv"][0], m["uv"][0]),
                                  (0, 0), nmsgs=len(ents)))]
    for i in range(0, len(ents), 1024):
        part2.append((BASE_MSGS, enc_base_msgs(ents[i:i + 1024])))
    return hdr, part2


@case("rename", "renames the peer asks for (of INBOX, into a symlinked "
      "parent, onto a symlink, into its own child) stay inside the root")
def c_rename(ctx, args):
    """args: FROM:TO pairs; B's mailbox FROM was synced under its name,
    and A now lists it (same GUID) as TO, so B's plan renames it.  A
    pair =FROM:TO must succeed (proof that the rename path is reached)."""
    for pair in args:
        must = pair.startswith("=")
        frm, to = (x.encode() for x in pair.lstrip("=").split(":", 1))
        say("- rename %s to %s" % (esc(frm), esc(to)))
        # B's view first, for the GUID and messages of the base (which
        # comes before the view in a sync).
        s = Server(ctx)
        try:
            s.handshake()
            full = s.list_session()
        except CaseFail:
            s.kill()
            raise
        check_run(s, hostile=False, codes={0}, what="list")
        if frm not in full:
            raise CaseFail("the server has no mailbox %s" % esc(frm))
        m = full[frm]
        hdr, part2 = base_of(m)
        s = Server(ctx)
        try:
            s.handshake()
            view = s.sync_start(base=[hdr])
            mbs = mirror(view)
            for x in mbs:
                if x["name"] == frm:
                    x["name"] = to
            s.send_view(mbs, base=part2)
            v, n = s.agree()
            say("  the server planned %d action(s)" % n)
            say("  results %r, status %r" % finish_session(s))
        except CaseFail as e:
            say("  (%s)" % e)
        check_run(s, hostile=False, what="rename")
        if must:
            s = Server(ctx)
            try:
                s.handshake()
                now = s.list_session()
            except CaseFail:
                s.kill()
                raise
            check_run(s, hostile=False, codes={0}, what="list")
            if to not in now or frm in now:
                raise CaseFail("the rename did not happen: %s" %
                               sorted(now))
    return 0


@case("symlink-lock", "a symlinked msync.lock in the root is not written "
      "through")
def c_symlink_lock(ctx, args):
    for what in ("list", "sync"):
        say("- %s" % what)
        s = Server(ctx)
        try:
            s.handshake()
            if what == "list":
                s.list_session()
            else:
                idx, m, n = plan_copy(s)
                s.send(MSG_BEGIN, u32(idx) + u64(len(s.msg)) + i64(m[5]))
                s.send(MSG_DATA, s.msg)
                s.send(MSG_END)
                finish_session(s)
        except CaseFail as e:
            say("  (%s)" % e)
        check_run(s, hostile=False, what=what)
    return 0


@case("base", "the base in two parts: hostile headers, unknown, repeated, "
      "missing or miscounted mailboxes, bad entries")
def c_base(ctx, args):
    g = b"\x61" * 16
    hdr = (BASE_MBOX, enc_mbox(b"Old", g, (5, 6), (7, 8)))

    def part1(recs):
        def steps(s):
            s.send(HELLO, enc_hello(MODE_TWOWAY, 0, O_CREATE, b"",
                                    ctx.layout))
            for t, p in recs:
                s.send(t, p)
        return steps
    for what, recs in (
            ("a header with nmsgs 1",
             [(BASE_MBOX, enc_mbox(b"Old", g, (5, 6), (7, 8), nmsgs=1))]),
            ("two headers with one GUID", [hdr, (BASE_MBOX, enc_mbox(
                b"Old2", g, (5, 6), (7, 8))), (BASE_END, b"")]),
            ("BASE_MSGS among the headers", [hdr, (BASE_MSGS, enc_base_msgs(
                [(b"\x01" * 16, 1, 1, 0, 0, b"", b"")]))]),
            ("unchanged 3", [(BASE_MBOX, enc_mbox(b"Old", g, unchanged=3))]),
            ("a header with trailing bytes", [(BASE_MBOX, hdr[1] + b"\0")]),
            ("a short header", [(BASE_MBOX, hdr[1][:-1])])):
        run_hostile(ctx, "part 1: " + what, part1(recs),
                    codes={EXIT_PROTOCOL})

    def part2(recs):
        def steps(s):
            view = s.sync_start(base=[hdr])
            s.send_view(mirror(view), base=recs)
        return steps
    e = lambda uid, ua=1, ub=1, fa=0, fb=0, ka=b"", kb=b"": \
        (struct.pack(">QQ", 9, uid), ua, ub, fa, fb, ka, kb)
    for what, recs in (
            ("nothing for a base mailbox", []),
            ("an unknown GUID", [(BASE_MBOX, enc_mbox(b"Old", b"\x62" * 16,
                                                      (5, 6), (7, 8)))]),
            ("the mailbox twice", [hdr, hdr]),
            ("fewer entries than announced",
             [(BASE_MBOX, enc_mbox(b"Old", g, (5, 6), (7, 8), nmsgs=2)),
              (BASE_MSGS, enc_base_msgs([e(1)]))]),
            ("more entries than announced",
             [(BASE_MBOX, enc_mbox(b"Old", g, (5, 6), (7, 8), nmsgs=1)),
              (BASE_MSGS, enc_base_msgs([e(1, 1, 1), e(2, 2, 2)]))]),
            ("BASE_MSGS claiming 0xffffffff entries",
             [(BASE_MBOX, enc_mbox(b"Old", g, (5, 6), (7, 8), nmsgs=1)),
              (BASE_MSGS, enc_base_msgs([e(1)], count=0xffffffff))]),
            ("an entry with both uids 0",
             [(BASE_MBOX, enc_mbox(b"Old", g, (5, 6), (7, 8), nmsgs=1)),
              (BASE_MSGS, enc_base_msgs([e(1, 0, 0)]))]),
            ("entries out of order",
             [(BASE_MBOX, enc_mbox(b"Old", g, (5, 6), (7, 8), nmsgs=2)),
              (BASE_MSGS, enc_base_msgs([e(1, 5, 5), e(2, 3, 3)]))]),
            ("flags 0x40",
             [(BASE_MBOX, enc_mbox(b"Old", g, (5, 6), (7, 8), nmsgs=1)),
              (BASE_MSGS, enc_base_msgs([e(1, fa=0x40)]))]),
            ("unsorted keywords",
             [(BASE_MBOX, enc_mbox(b"Old", g, (5, 6), (7, 8), nmsgs=1)),
              (BASE_MSGS, enc_base_msgs([e(1, ka=b"b a")]))]),
            ("27 keywords",
             [(BASE_MBOX, enc_mbox(b"Old", g, (5, 6), (7, 8), nmsgs=1)),
              (BASE_MSGS, enc_base_msgs([e(1, ka=b" ".join(
                  b"k%02d" % i for i in range(27)))]))]),
            ("a keyword with a control character",
             [(BASE_MBOX, enc_mbox(b"Old", g, (5, 6), (7, 8), nmsgs=1)),
              (BASE_MSGS, enc_base_msgs([e(1, kb=b"a\x01")]))]),
            ("MBOX in the base", [(MBOX, enc_mbox(b"Old", g))])):
        run_hostile(ctx, "part 2: " + what, part2(recs),
                    codes={EXIT_PROTOCOL})
    return 0


@case("fields", "field values out of their ranges in otherwise "
      "well-framed records (uids, flags, sizes, keywords, statuses)")
def c_fields(ctx, args):
    def view_msgs(*msgs):
        def steps(s):
            s.sync_start()
            s.send(MBOX, enc_mbox(b"INBOX", b"\x01" * 16, nmsgs=len(msgs)))
            s.send(MSGS, enc_msgs(list(msgs)))
            s.send(LIST_END)
        return steps
    g = b"\x07" * 16
    kw = lambda k: (1, g, 0, k, 10, 0)
    for what, steps in (
            ("uid 0", view_msgs((0, g, 0, b"", 10, 0))),
            ("flags 0x40", view_msgs((1, g, 0x40, b"", 10, 0))),
            ("flags 0xff", view_msgs((1, g, 0xff, b"", 10, 0))),
            ("size 4 GiB + 1", view_msgs((1, g, 0, b"", (4 << 30) + 1, 0))),
            ("size 2^64 - 1", view_msgs((1, g, 0, b"", (1 << 64) - 1, 0))),
            ("keywords out of order", view_msgs(kw(b"b a"))),
            ("a duplicate keyword", view_msgs(kw(b"a a"))),
            ("a trailing space", view_msgs(kw(b"a "))),
            ("a leading space", view_msgs(kw(b" a"))),
            ("two spaces", view_msgs(kw(b"a  b"))),
            ("27 keywords", view_msgs(kw(b" ".join(
                b"k%02d" % i for i in range(27))))),
            ("a keyword of 65 bytes", view_msgs(kw(b"k" * 65))),
            ("keywords of 1691 bytes", view_msgs(kw(b"k" * 1691))),
            ("a keyword with DEL", view_msgs(kw(b"a\x7f"))),
            ("a keyword with NUL", view_msgs(kw(b"a\x00"))),
            ("a keyword with a tab", view_msgs(kw(b"a\tb"))),
            ("a keyword of invalid UTF-8", view_msgs(kw(b"\xff"))),
            ("MBOX unchanged 3", lambda s: (s.sync_start(), s.send(
                MBOX, enc_mbox(b"INBOX", unchanged=3)))),
            ("MBOX with trailing bytes", lambda s: (s.sync_start(), s.send(
                MBOX, enc_mbox(b"INBOX") + b"\x00"))),
            ("a short MBOX", lambda s: (s.sync_start(), s.send(
                MBOX, enc_mbox(b"INBOX")[:-1]))),
            ("LOG level 5", lambda s: s.send(LOG, enc_text(5, b"x"))),
            ("LOG level -256", lambda s: s.send(LOG, enc_text(-256, b"x"))),
            ("LOG with an escape", lambda s: s.send(
                LOG, enc_text(1, b"\x1b]0;pwned\x07"))),
            ("LOG of invalid UTF-8", lambda s: s.send(
                LOG, enc_text(1, b"\xc0\x80"))),
            ("a short DIGEST", lambda s: (
                s.sync_start(), s.send_view(mirror({b"INBOX": {
                    "guid": g, "uv": (1, 0), "msgs": []}})),
                s.send(DIGEST, u64(0) + u8(0)))),
            ("a short MSG_BEGIN", lambda s: (
                plan_copy(s), s.send(MSG_BEGIN, u32(0) + u64(1) + u32(0)))),
            ("MSG_SKIP with status 1", lambda s: (
                plan_copy(s), s.send(MSG_SKIP, u32(0) + i32(1)))),
            ("DONE with status 1", lambda s: (
                plan_copy(s), s.send(DONE, i32(1) + u32(0)))),
            ("DONE with status -256", lambda s: (
                plan_copy(s), s.send(DONE, i32(-256) + u32(0)))),
            ("DONE with a missing entry", lambda s: (
                plan_copy(s), s.send(DONE, i32(0) + u32(1)))),
            ("DONE with 100001 entries", lambda s: (
                plan_copy(s), s.send(DONE, i32(0) + u32(100001) +
                                     b"\x00" * 16 * 100001)))):
        run_hostile(ctx, what, steps, codes={EXIT_PROTOCOL})
    # An ERROR from A is legal: B stops, non-zero, and stays quiet.
    res = run_hostile(ctx, "an ERROR from the peer",
                      lambda s: (s.sync_start(),
                                 s.send(ERROR, enc_text(-7, b"A gives up"))),
                      need_msg=False)
    return 0


@case("lengths", "absurd record and string lengths (0xffffffff) are "
      "refused before anything is allocated")
def c_lengths(ctx, args):
    hdr = lambda s, t, n: s.rec(t, b"", n)
    for t in (HELLO, MSGS, MSG_DATA, LOG, BYE, BASE_END):
        run_hostile(ctx, "%s record of length 0xffffffff" % REC_NAMES[t],
                    lambda s, t=t: s.send_raw(hdr(s, t, 0xffffffff) +
                                              b"\x00" * 64),
                    codes={EXIT_PROTOCOL})
    for t in (HELLO, MBOX, DIGEST, MSG_BEGIN, LOG):
        run_hostile(ctx, "%s record one byte over its maximum" %
                    REC_NAMES[t],
                    lambda s, t=t: s.send_raw(hdr(s, t, REC_MAX[t] + 1)),
                    codes={EXIT_PROTOCOL})
    # Strings claiming 4 GiB inside small records.
    ff = u32(0xffffffff)
    run_hostile(ctx, "HELLO path of length 0xffffffff",
                lambda s: s.send(HELLO, u8(MODE_LIST) + u8(0) +
                                 u32(O_READ_ONLY) + ff + b"/x" + u8(0) +
                                 u32(0) + u32(0)),
                codes={EXIT_PROTOCOL})
    run_hostile(ctx, "HELLO pattern of length 0xffffffff",
                lambda s: s.send(HELLO, u8(MODE_LIST) + u8(0) +
                                 u32(O_READ_ONLY) + u32(0) + u8(0) +
                                 u32(1) + ff + b"abc" + u32(0)),
                codes={EXIT_PROTOCOL})

    def mbox_name(s):
        s.sync_start()
        s.send(MBOX, ff + b"INBOX" + b"\x00" * 60)
    run_hostile(ctx, "MBOX name of length 0xffffffff", mbox_name,
                codes={EXIT_PROTOCOL, EXIT_DATAERR})

    def kw_len(s):
        s.sync_start()
        s.send(MBOX, enc_mbox(b"INBOX", nmsgs=1))
        s.send(MSGS, u32(1) + u32(1) + b"\x01" * 16 + u8(0) + ff +
               u64(10) + i64(0))
    run_hostile(ctx, "MSGS keywords of length 0xffffffff", kw_len,
                codes={EXIT_PROTOCOL})
    run_hostile(ctx, "LOG text of length 0xffffffff",
                lambda s: s.send(LOG, i32(1) + ff + b"hello"),
                codes={EXIT_PROTOCOL})
    run_hostile(ctx, "ERROR text of 4097 bytes",
                lambda s: s.send(ERROR, enc_text(-4, b"e" * 4097)),
                codes={EXIT_PROTOCOL, 1})
    return 0


@case("counts", "absurd counts (4 billion entries, 10 million messages "
      "announced) are refused or cost nothing")
def c_counts(ctx, args):
    ff = 0xffffffff

    def msgs_count(s, n=ff):
        s.sync_start()
        s.send(MBOX, enc_mbox(b"INBOX", b"\x01" * 16, nmsgs=5))
        s.send(MSGS, enc_msgs([new_msg()], count=n))
    run_hostile(ctx, "MSGS claiming 0xffffffff entries", msgs_count,
                codes={EXIT_PROTOCOL})
    run_hostile(ctx, "MSGS claiming 1025 entries",
                lambda s: msgs_count(s, 1025), codes={EXIT_PROTOCOL})
    run_hostile(ctx, "MSGS claiming 1024 entries, holding 1",
                lambda s: msgs_count(s, 1024), codes={EXIT_PROTOCOL})

    def base_count(s, n=ff):
        s.send(HELLO, enc_hello(MODE_TWOWAY, 0, O_CREATE, b"", ctx.layout))
        s.send(BASE_MBOX, enc_mbox(b"INBOX", b"\x01" * 16, (1, 1), (1, 1),
                                   nmsgs=2))
        s.send(BASE_MSGS, enc_base_msgs(
            [(b"\x02" * 16, 1, 1, 0, 0, b"", b"")], count=n))
    run_hostile(ctx, "BASE_MSGS claiming 0xffffffff entries", base_count,
                codes={EXIT_PROTOCOL})
    run_hostile(ctx, "HELLO claiming 0xffffffff patterns",
                lambda s: s.send(HELLO, u8(MODE_LIST) + u8(0) +
                                 u32(O_READ_ONLY) + u32(0) + u8(0) +
                                 u32(ff) + sstr(b"a") + u32(0)),
                codes={EXIT_PROTOCOL})
    run_hostile(ctx, "HELLO with 257 patterns",
                lambda s: s.send(HELLO, enc_hello(
                    MODE_LIST, include=[b"a"] * 257)),
                codes={EXIT_PROTOCOL})
    for what, nm in (("0xffffffff", ff), ("10000001", 10000001)):
        def mbox_n(s, nm=nm):
            s.sync_start()
            s.send(MBOX, enc_mbox(b"INBOX", b"\x01" * 16, nmsgs=nm))
        run_hostile(ctx, "MBOX announcing %s messages" % what, mbox_n,
                    codes={EXIT_PROTOCOL})

    # The largest legal announcements, then the end: nothing may be
    # allocated for what was only announced.
    def mbox_10m(s):
        s.sync_start()
        s.send(MBOX, enc_mbox(b"INBOX", b"\x01" * 16, nmsgs=10000000,
                              count=10000000, nbytes=1 << 62))
        s.send(LIST_END)
    run_hostile(ctx, "MBOX announcing 10 million messages, sending none",
                mbox_10m, codes={EXIT_PROTOCOL})

    def base_10m(s):
        s.send(HELLO, enc_hello(MODE_TWOWAY, 0, O_CREATE, b"", ctx.layout))
        s.send(BASE_MBOX, enc_mbox(b"INBOX", b"\x01" * 16, (1, 1), (1, 1),
                                   nmsgs=10000000))
        s.send(BASE_END)
    run_hostile(ctx, "BASE_MBOX announcing 10 million messages, sending "
                "none", base_10m, codes={EXIT_PROTOCOL})

    # Many mailboxes: the count of MBOX records is bounded too
    # (MSYNC_MBOX_MAX = 100000); a few thousand must be cheap and a
    # duplicate name refused.
    def many(s):
        s.sync_start()
        out = b"".join(s.rec(MBOX, enc_mbox(b"m%d" % i,
                                            struct.pack(">QQ", 1, i)))
                       for i in range(5000))
        out += s.rec(MBOX, enc_mbox(b"m1", struct.pack(">QQ", 2, 1)))
        s.send_raw(out + s.rec(LIST_END))
    run_hostile(ctx, "5000 mailboxes and a duplicate name", many,
                codes={EXIT_PROTOCOL})

    def done_count(s):
        idx, m, n = plan_copy(s)
        s.send(DONE, i32(0) + u32(ff))
    run_hostile(ctx, "DONE claiming 0xffffffff mailboxes", done_count,
                codes={EXIT_PROTOCOL})
    return 0


@case("types", "unknown record types, and known ones in the wrong "
      "direction, are refused")
def c_types(ctx, args):
    for t in (0, 19, 100, 255):     # 18 is KEEPALIVE
        run_hostile(ctx, "record type %d first" % t,
                    lambda s, t=t: s.send_raw(s.rec(t)),
                    codes={EXIT_PROTOCOL})

    def late(s, t=19):
        s.sync_start()
        s.send_raw(s.rec(t, b"abcd"))
    for t in (0, 19, 200):
        run_hostile(ctx, "record type %d in the view" % t,
                    lambda s, t=t: late(s, t), codes={EXIT_PROTOCOL})

    def result_to_b(s):
        idx, m, n = plan_copy(s)
        s.send(RESULT, u32(1) + u32(idx) + u32(1) + i32(0))
    run_hostile(ctx, "RESULT sent to B", result_to_b, codes={EXIT_PROTOCOL})
    return 0


@case("list-tail", "after a --list view, anything but BYE (or the end "
      "of the stream) is a protocol error")
def c_list_tail(ctx, args):
    def steps(data):
        def f(s):
            s.send(HELLO, enc_hello(MODE_LIST, 0, O_READ_ONLY, b"",
                                    ctx.layout))
            s.read_view()
            s.send_raw(data(s))
        return f
    for what, data in (
            ("a record of type 0", lambda s: s.rec(0)),
            ("a second HELLO", lambda s: s.rec(HELLO, enc_hello())),
            ("a MSGS of length 0xffffffff",
             lambda s: s.rec(MSGS, b"", 0xffffffff))):
        run_hostile(ctx, "LIST, then " + what, steps(data),
                    codes={EXIT_PROTOCOL})
    return 0


@case("truncated", "truncated records, then the end of the stream")
def c_truncated(ctx, args):
    before = list_files(ctx.root)
    hello = rec(HELLO, enc_hello(MODE_LIST, 0, O_READ_ONLY, b"",
                                 ctx.layout))
    cuts = [("1 byte of a header", hello[:1]),
            ("4 bytes of a header", hello[:4]),
            ("a header and half a HELLO", hello[:len(hello) // 2 + 3]),
            ("a HELLO but its last byte", hello[:-1])]
    for what, data in cuts:
        run_hostile(ctx, what + ", then EOF",
                    lambda s, d=data: s.send_raw(d),
                    codes={EXIT_TEMPFAIL, EXIT_PROTOCOL}, need_msg=False)

    def mid_view(s):
        s.sync_start()
        s.send_raw(s.rec(MBOX, enc_mbox(b"INBOX"))[:20])
    run_hostile(ctx, "half a MBOX, then EOF", mid_view,
                codes={EXIT_TEMPFAIL, EXIT_PROTOCOL}, need_msg=False)

    def mid_msg(s):
        idx, m, n = plan_copy(s)
        s.send(MSG_BEGIN, u32(idx) + u64(len(s.msg)) + i64(0))
        s.send_raw(s.rec(MSG_DATA, s.msg)[:30])
    run_hostile(ctx, "half a MSG_DATA, then EOF", mid_msg,
                codes={EXIT_TEMPFAIL, EXIT_PROTOCOL}, need_msg=False)

    def begin_4g(s):
        idx, m, n = plan_copy(s)
        s.send(MSG_BEGIN, u32(idx) + u64(4 << 30) + i64(0))
        s.send(MSG_DATA, b"x" * 262144)
    run_hostile(ctx, "MSG_BEGIN announcing 4 GiB, 256 KiB of it, then EOF",
                begin_4g, codes={EXIT_TEMPFAIL, EXIT_PROTOCOL},
                need_msg=False)
    # No trace of a half-received message may stay in cur/, new/, tmp/.
    new = sorted(k for k in list_files(ctx.root) if k not in before)
    if new:
        raise CaseFail("a half-received message left files behind: %s" %
                       new)
    return 0


@case("order", "records in the wrong order are refused")
def c_order(ctx, args):
    h = enc_hello(MODE_TWOWAY, 0, O_CREATE, b"", ctx.layout)

    def seq(*recs, start=False):
        def steps(s):
            if start:
                s.sync_start()
            for t, p in recs:
                s.send(t, p)
        return steps
    for what, steps in (
            ("BYE first", seq((BYE, b""))),
            ("MBOX before HELLO", seq((MBOX, enc_mbox(b"INBOX")))),
            ("BASE_END before HELLO", seq((BASE_END, b""))),
            ("DIGEST before HELLO", seq((DIGEST, u64(1) + u32(0)))),
            ("two HELLOs", seq((HELLO, h), (HELLO, h))),
            ("BASE_MSGS before BASE_MBOX",
             seq((HELLO, h), (BASE_MSGS, enc_base_msgs(
                 [(b"\x01" * 16, 1, 1, 0, 0, b"", b"")])))),
            ("LIST_END in the base", seq((HELLO, h), (LIST_END, b""))),
            ("MBOX in the base", seq((HELLO, h), (MBOX, enc_mbox(b"x")))),
            ("MSGS before MBOX", seq((MSGS, enc_msgs([new_msg()])),
                                     start=True)),
            ("DIGEST before LIST_END", seq((DIGEST, u64(1) + u32(0)),
                                           start=True)),
            ("BASE_MBOX in the view", seq((BASE_MBOX, enc_mbox(b"x")),
                                          start=True)),
            ("MSG_BEGIN in the view", seq((MSG_BEGIN, u32(0) + u64(1) +
                                           i64(0)), start=True)),
            ("BYE in the view", seq((BYE, b""), start=True)),
            ("HELLO in the view", seq((HELLO, h), start=True)),
            ("more MSGS than the MBOX said", seq(
                (MBOX, enc_mbox(b"INBOX", nmsgs=0)),
                (MSGS, enc_msgs([new_msg()])), start=True)),
            ("fewer MSGS than the MBOX said", seq(
                (MBOX, enc_mbox(b"INBOX", nmsgs=2)),
                (MSGS, enc_msgs([new_msg()])), (LIST_END, b""),
                start=True)),
            ("uids not increasing", seq(
                (MBOX, enc_mbox(b"INBOX", nmsgs=2)),
                (MSGS, enc_msgs([new_msg(5), new_msg(5)])), start=True)),
            ("'unchanged' mailbox with no base", seq(
                (MBOX, enc_mbox(b"INBOX", unchanged=1)), start=True))):
        run_hostile(ctx, what, steps, codes={EXIT_PROTOCOL})

    def digest_wrong(s):
        view = s.sync_start()
        s.send_view(mirror(view))
        v, n = dec_digest(s.expect(DIGEST))
        s.send(DIGEST, u64(v ^ 1) + u32(n))
    run_hostile(ctx, "a DIGEST that differs", digest_wrong,
                codes={EXIT_PROTOCOL})

    def transfer_wrong(s, recs):
        idx, m, n = plan_copy(s)
        for t, p in recs(idx, m, s.msg):
            s.send(t, p)
    for what, recs in (
            ("MSG_DATA before MSG_BEGIN",
             lambda i, m, d: [(MSG_DATA, d)]),
            ("MSG_END before MSG_BEGIN", lambda i, m, d: [(MSG_END, b"")]),
            ("two MSG_BEGINs", lambda i, m, d: [
                (MSG_BEGIN, u32(i) + u64(len(d)) + i64(0)),
                (MSG_BEGIN, u32(i) + u64(len(d)) + i64(0))]),
            ("a second copy of a done message", lambda i, m, d: [
                (MSG_BEGIN, u32(i) + u64(len(d)) + i64(0)),
                (MSG_DATA, d), (MSG_END, b""),
                (MSG_BEGIN, u32(i) + u64(len(d)) + i64(0))]),
            ("MSG_SKIP inside a message", lambda i, m, d: [
                (MSG_BEGIN, u32(i) + u64(len(d)) + i64(0)),
                (MSG_SKIP, u32(i) + i32(-12))]),
            ("BYE inside a message", lambda i, m, d: [
                (MSG_BEGIN, u32(i) + u64(len(d)) + i64(0)),
                (BYE, b"")]),
            ("HELLO in the transfer", lambda i, m, d: [
                (HELLO, enc_hello())]),
            ("MBOX in the transfer", lambda i, m, d: [
                (MBOX, enc_mbox(b"INBOX"))]),
            ("two DONEs", lambda i, m, d: [(DONE, enc_done()),
                                           (DONE, enc_done())])):
        run_hostile(ctx, what, lambda s, r=recs: transfer_wrong(s, r),
                    codes={EXIT_PROTOCOL})
    return 0


@case("msg-data", "MSG_DATA longer or shorter than MSG_BEGIN announced; "
      "out-of-range sizes")
def c_msg_data(ctx, args):
    before = list_files(ctx.root)

    def steps(s, size, chunks, end=True):
        idx, m, n = plan_copy(s)
        s.send(MSG_BEGIN, u32(idx) + u64(size) + i64(0))
        for c in chunks:
            s.send(MSG_DATA, c)
        if end:
            s.send(MSG_END)
    for what, size, chunks, end in (
            ("10 bytes announced, %d sent" % len(MSG), 10, [MSG], True),
            ("0 bytes announced, 1 sent", 0, [b"x"], True),
            ("two pieces adding up to more", len(MSG),
             [MSG, b"more"], True),
            ("fewer bytes than announced, then MSG_END", len(MSG) + 1,
             [MSG], True),
            ("4 GiB + 1 announced", (4 << 30) + 1, [], False),
            ("2^64 - 1 announced", (1 << 64) - 1, [], False)):
        run_hostile(ctx, what, lambda s, a=size, b=chunks, c=end:
                    steps(s, a, b, c), codes={EXIT_PROTOCOL})
    run_hostile(ctx, "MSG_END with a payload",
                lambda s: (steps(s, len(MSG), [MSG], False),
                           s.send(MSG_END, b"x")),
                codes={EXIT_PROTOCOL})
    after = list_files(ctx.root)
    new = sorted(k for k in after if k not in before)
    if new:
        raise CaseFail("a refused message left files behind: %s" % new)
    return 0


@case("guid-mismatch", "a message whose content does not match its GUID "
      "is discarded, not kept in cur/ or new/")
def c_guid_mismatch(ctx, args):
    before = list_files(ctx.root)
    say("- a copy whose content differs from its GUID")
    s = Server(ctx)
    try:
        s.handshake()
        # The GUID of MSG (or any GUID), the content of evil.
        idx, m, n = plan_copy(s)
        evil = s.msg.replace(b"hostile peer", b"HOSTILE PEER")
        s.send(MSG_BEGIN, u32(idx) + u64(len(evil)) + i64(0))
        s.send(MSG_DATA, evil)
        s.send(MSG_END)
        results, st = finish_session(s)
    except CaseFail:
        s.kill()
        raise
    # The session is otherwise complete: the server may end it normally
    # (A reports the bad data), so exit 0 is allowed here.
    res = check_run(s, hostile=False, what="mismatch")
    after = list_files(ctx.root)
    new = sorted(k for k in after if k not in before)
    if new:
        raise CaseFail("the bad message was kept: %s" % new)
    said = [t for n, t in res.logs if n == 0] + [t for n, t in res.errors]
    if not any(b"GUID" in t or b"match" in t for t in said):
        raise CaseFail("the server did not say the content was bad")
    if not any(r[2] == ERR_BADDATA for r in results) and st != ERR_BADDATA:
        raise CaseFail("neither RESULT nor DONE says BADDATA: %r, %r" %
                       (results, st))
    say("  discarded; RESULT %r, DONE status %r" % (results, st))
    return 0


@case("act-range", "a COPY (MSG_BEGIN / MSG_SKIP) naming an action out of "
      "range, or one that is not a COPY to the server, is refused")
def c_act_range(ctx, args):
    def fresh():
        _nonce[0] += 1
        return b"newbox-%d-%d" % (os.getpid(), _nonce[0])

    def begin(s, which):
        idx, m, n = plan_copy(s, name=fresh())   # create + copy
        if n != 2:
            raise CaseFail("expected a plan of 2 actions, got %d" % n)
        act = {"nact": n, "max": 0xffffffff, "create": 0,
               "huge": 0x80000000}[which]
        s.send(MSG_BEGIN, u32(act) + u64(len(s.msg)) + i64(0))
        s.send(MSG_DATA, s.msg)
        s.send(MSG_END)

    def skip(s, which):
        idx, m, n = plan_copy(s, name=fresh())
        if n != 2:
            raise CaseFail("expected a plan of 2 actions, got %d" % n)
        act = {"nact": n, "max": 0xffffffff, "create": 0}[which]
        s.send(MSG_SKIP, u32(act) + i32(-12))
    for which in ("nact", "max", "huge", "create"):
        run_hostile(ctx, "MSG_BEGIN for action %s" % which,
                    lambda s, w=which: begin(s, w), codes={EXIT_PROTOCOL})
    for which in ("nact", "max", "create"):
        run_hostile(ctx, "MSG_SKIP for action %s" % which,
                    lambda s, w=which: skip(s, w), codes={EXIT_PROTOCOL})
    run_hostile(ctx, "MSG_SKIP with status 0",
                lambda s: (plan_copy(s), s.send(MSG_SKIP, u32(0) + i32(0))),
                codes={EXIT_PROTOCOL})
    run_hostile(ctx, "MSG_SKIP with status -256",
                lambda s: (plan_copy(s), s.send(MSG_SKIP, u32(0) +
                                                i32(-256))),
                codes={EXIT_PROTOCOL})
    return 0


@case("handshake-garbage", "a handshake line of garbage is refused")
def c_hs_garbage(ctx, args):
    lines = [b"bash: msync: command not found\n",
             b"\x00\x01\x02\x03garbage\n",
             b"msync\n", b"msync 1\n", b"msync 1 1 \n", b"msync 01 1\n",
             b"msync 1 1 lz4\r\n", b"msync  1 1\n", b"msync 2 1\n",
             b"msync 1 1 LZ4\n", b"msync 1 1 " + b"x" * 33 + b"\n",
             b"msync 1 1 " + b"a " * 200 + b"\n",     # over 256 bytes
             b"msync 1 99999999999999999999\n",
             b"MSYNC 1 1\n", b"\xffmsync 1 1\n",
             b"x" * 100000,                             # no newline at all
             b"msync 1 1 lz4"]                          # then EOF
    for line in lines:
        run_hostile(ctx, "handshake %s" % esc(line, 50),
                    lambda s, l=line: s.send_raw(l),
                    codes={EXIT_PROTOCOL, EXIT_TEMPFAIL}, need_msg=False,
                    handshake=False)
    return 0


@case("handshake-version", "a handshake with no common version is refused "
      "with a message naming both ranges")
def c_hs_version(ctx, args):
    # Versions far above any msync's (the highest today is in proto.h's
    # PROTO_VERSION_MAX), so that a protocol bump does not make them
    # common ones.
    for line in (b"msync 1000 1001 lz4\n", b"msync 65535 65535\n",
                 b"msync 1000 65535 lz4 compress\n",
                 b"msync 1 1 lz4\n"):     # protocol 1: no checksums

        res = run_hostile(ctx, "handshake %s" % esc(line),
                          lambda s, l=line: s.send_raw(l),
                          codes={EXIT_PROTOCOL}, need_msg=False,
                          handshake=False)
        if b"version" not in res.stderr:
            raise CaseFail("no word of the version on stderr")
    return 0


@case("lz4", "hostile LZ4 blocks: absurd lengths, short or bad data, "
      "matches before the start of the stream")
def c_lz4(ctx, args):
    hello = rec(HELLO, enc_hello(MODE_LIST, 0, O_READ_ONLY, b"",
                                 ctx.layout))

    def raw(data):
        def steps(s):
            s.send_raw(data)
        return steps
    cases = [
        ("clen 0xffffffff", lz4_hdr(0xffffffff, 10) + b"x" * 32),
        ("clen 0", lz4_hdr(0, 10)),
        ("rlen 0", lz4_hdr(2, 0) + b"\x10x"),
        ("rlen 65537", lz4_hdr(2, 65537) + b"\x10x"),
        ("rlen 0xffffffff", lz4_hdr(2, 0xffffffff) + b"\x10x"),
        # 65809 is LZ4_COMPRESSBOUND(65536) (PROTOCOL.md says 65808).
        ("clen 65810", lz4_hdr(65810, 100) + b"\x00" * 100),
        ("a block shorter than rlen", lz4_frame(hello, rlen=len(hello) + 5)),
        ("a block longer than rlen", lz4_frame(hello, rlen=len(hello) - 1)),
        ("a match before the stream start",
         lz4_hdr(8, 40) + bytes([0x1f, 0x41, 0xff, 0xff, 0x10, 0x41,
                                   0x41, 0x41])),
        ("a match of offset 0",
         lz4_hdr(9, 40) + bytes([0x1f, 0x41, 0x00, 0x00, 0x05, 0x50,
                                   0x41, 0x41, 0x41])),
        ("a literal run past the block",
         lz4_hdr(3, 200) + bytes([0xf0, 0xff, 0x41])),
        ("a record of length 0xffffffff inside a block",
         lz4_frame(rec(HELLO, b"", 0, 0xffffffff) + b"x" * 10)),
        ("a HELLO, then a bad block", lz4_frame(hello) + lz4_hdr(4, 50, 1) +
         b"\xff\xff\xff\xff"),
    ]
    for what, data in cases:
        run_hostile(ctx, "compressed: " + what, raw(data),
                    codes={EXIT_PROTOCOL}, compress=True)
    # A good session whose records straddle blocks: the client is right.
    def split(s):
        data = hello
        s.send_raw(lz4_frame(data[:1], seq=0) +
                   lz4_frame(data[1:7], seq=1) +
                   lz4_frame(data[7:], seq=2))
        view = s.read_view()
        s.send_raw(lz4_frame(rec(BYE, b"", 1), seq=3))
        if b"INBOX" not in view:
            raise CaseFail("no INBOX in the view")
    say("- compressed: a HELLO cut over three blocks")
    srv = Server(ctx)
    try:
        srv.handshake(compress=True)
        split(srv)
    except CaseFail:
        srv.kill()
        raise
    check_run(srv, hostile=False, codes={0}, what="split HELLO")
    run_hostile(ctx, "compressed: MSGS claiming 0xffffffff entries",
                lambda s: (s.sync_start(), s.send(
                    MBOX, enc_mbox(b"INBOX", nmsgs=1)),
                    s.send(MSGS, u32(0xffffffff) + b"\x00" * 50)),
                codes={EXIT_PROTOCOL}, compress=True)
    run_hostile(ctx, "compressed: half a block, then EOF",
                raw(lz4_frame(hello)[:7]),
                codes={EXIT_TEMPFAIL, EXIT_PROTOCOL}, compress=True,
                need_msg=False)
    return 0


@case("flood", "a peer that never stops sending while the server "
      "waits: bounded memory, no hang")
def c_flood(ctx, args):
    # LOG records are legal at any time; 30 MiB of them must not pile up.
    def logs(s):
        s.sync_start()
        one = enc_text(4, b"x" * 4000)
        for _ in range(30):
            blob = b"".join(s.rec(LOG, one) for _ in range(256))
            if not s.send_raw(blob):
                break
        s.send_raw(s.rec(BYE))
    run_hostile(ctx, "30 MiB of LOG records, then BYE in the view", logs,
                codes={EXIT_PROTOCOL})

    # MSGS records up to the limit of one mailbox would be 10 million
    # entries; 40 MiB of legal ones must cost memory in proportion only.
    def msgs(s):
        s.sync_start()
        n = 1024 * 40
        s.send(MBOX, enc_mbox(b"INBOX", b"\x01" * 16, nmsgs=n + 1))
        uid = 1
        for _ in range(40):
            batch = [(uid + i, struct.pack(">QQ", 7, uid + i), 0, b"",
                      10, 0) for i in range(1024)]
            uid += 1024
            if not s.send(MSGS, enc_msgs(batch)):
                break
        s.send(LIST_END)
    run_hostile(ctx, "40960 messages listed of 40961 announced", msgs,
                codes={EXIT_PROTOCOL})
    return 0


def main(argv):
    global VERBOSE
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--msync", default=os.environ.get("MSYNC", "msync"))
    ap.add_argument("--root")
    ap.add_argument("--watch")
    ap.add_argument("--layout", default="maildir", choices=sorted(LAYOUTS))
    ap.add_argument("--outside")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("-v", action="store_true")
    ap.add_argument("case", nargs="?")
    ap.add_argument("args", nargs="*")
    o = ap.parse_args(argv)
    if o.list:
        for k in sorted(CASES):
            print("%-18s %s" % (k, CASES[k][1]))
        return 0
    if not o.case or o.case not in CASES or not o.root:
        ap.error("need --root and a CASE (see --list)")
    VERBOSE = o.v
    ctx = Ctx(o.msync, o.root, o.watch, o.layout, o.outside)
    say("# case %s: %s" % (o.case, CASES[o.case][1]))
    say("# msync %s, root %s, layout %s%s" % (
        ctx.msync, ctx.root, o.layout,
        ", sanitizer build: no address-space limit" if ctx.san else ""))
    t0 = time.monotonic()
    try:
        rc = CASES[o.case][0](ctx, o.args) or 0
    except CaseFail as e:
        say("FAIL: %s" % e)
        return 1
    say("# ok: %d server run(s) in %.1f s" % (ctx.runs,
                                             time.monotonic() - t0))
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
