#!/usr/bin/env python3
"""corrupt_sweep.py -- for t6100: run one msync sync many times through
corrupt_relay.py, each time with one byte of the stream changed, and check
that every run either converges exactly or fails cleanly.

    corrupt_sweep.py --msync M --snap DIR --work DIR --mode plain|lz4

DIR (--work) holds A/ (a Maildir++ store, the local side), B/ (the
"remote" side, reached through the relay) and state/ (msync's --state-dir
after an earlier sync); --snap is a copy of it (cp -a) to start every run
from: work/ is restored from it in place, so that its directories keep
the inodes the stores' indexes know.  The
stores are read with Python's mailbox module, not with msync.

1. A clean run through the relay (nothing changed, both directions
   dumped) gives the reference result: A's and B's content after it.
2. Offsets are planned from the dumps: without compression, for every
   record type in each direction, bytes of the first such record's header
   (type, length, both checks) and of its payload (first, middle, last);
   with compression, the same through the LZ4 literals that decode into
   those bytes (the dump is decoded here, lz4_records), plus bytes of
   the handshake line, of block headers and spread over the block data.
3. For each offset: restore the snapshot, run with that byte changed, and
   require either
   * exit 0 and both stores exactly as in the reference, or
   * exit 65 or 76 with the state file byte-identical, no message lost
     (every message of either side before is still on one side, unless
     the reference run deletes it), no damaged or unknown message on
     either side, and a clean re-run that then ends exactly as the
     reference.
      and in both cases no new entry next to the stores (a changed store
   path once made the server create and fill a sibling directory).
   Anything else (another exit status, a run that does not end within
   its bound) is a failure.

Prints one line per run and a summary; exits 1 if any run failed.
"""

import argparse
import collections
import hashlib
import mailbox
import os
import shutil
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
RELAY = os.path.join(HERE, "corrupt_relay.py")
RUN_BOUND = 120         # seconds: a run that takes longer has hung
REC_HDR = 13
LZ4_HDR = 12
NAMES = {1: "HELLO", 2: "BASE_MBOX", 3: "BASE_MSGS", 4: "BASE_END",
         5: "MBOX", 6: "MSGS", 7: "LIST_END", 8: "DIGEST", 9: "MSG_BEGIN",
         10: "MSG_DATA", 11: "MSG_END", 12: "MSG_SKIP", 13: "RESULT",
         14: "DONE", 15: "LOG", 16: "ERROR", 17: "BYE", 18: "KEEPALIVE",
         19: "MSGS_DELTA", 20: "BASE_REFS"}


def lz4_records(stream, pos):
    """Decodes the LZ4 blocks of one direction's dump from pos (after the
    handshake line) as msync's lz4s.c writes them: each block header
    (clen, rlen, check) then one LZ4 block whose matches may reach back
    into earlier blocks.  Returns (raw, lit): the record stream, and for
    each of its bytes the dump offset of the literal it was copied from,
    or -1 for a byte a match produced (a changed literal changes exactly
    that byte of the record stream)."""
    raw = bytearray()
    lit = []
    while pos + LZ4_HDR <= len(stream):
        clen, rlen = struct.unpack(">II", stream[pos:pos + 8])
        p = pos + LZ4_HDR
        end = p + clen
        start = len(raw)
        while p < end:
            tok = stream[p]
            p += 1
            n = tok >> 4
            if n == 15:
                while True:
                    b = stream[p]
                    p += 1
                    n += b
                    if b != 255:
                        break
            raw += stream[p:p + n]
            lit.extend(range(p, p + n))
            p += n
            if p >= end:
                break           # the last sequence has no match
            dist = stream[p] | stream[p + 1] << 8
            p += 2
            m = tok & 15
            if m == 15:
                while True:
                    b = stream[p]
                    p += 1
                    m += b
                    if b != 255:
                        break
            m += 4
            for _ in range(m):
                raw.append(raw[-dist])
            lit.extend([-1] * m)
        if len(raw) - start != rlen:
            raise SystemExit("lz4_records: block at %d decodes to %d "
                             "bytes, not %d" % (pos, len(raw) - start, rlen))
        pos = end
    return bytes(raw), lit


def literal_near(lit, lo, hi, want):
    """The dump offset of a literal byte of the record stream in [lo, hi),
    the one closest to want, or None."""
    best = None
    for i in range(lo, hi):
        if lit[i] >= 0 and (best is None or abs(i - want) < abs(best - want)):
            best = i
    return None if best is None else lit[best]


def view(root):
    """{folder: sorted [(sha256 of the bytes, flags)]} of a Maildir++."""
    md = mailbox.Maildir(root, factory=None, create=False)
    out = {}
    for name, box in [("INBOX", md)] + [(f, md.get_folder(f))
                                        for f in md.list_folders()]:
        items = []
        for key in box.keys():
            data = box.get_bytes(key)
            items.append((hashlib.sha256(data).hexdigest(),
                          box.get_message(key).get_flags()))
        out[name] = sorted(items)
    return out


def contents(v):
    return {h for items in v.values() for h, _ in items}


def state_bytes(d):
    out = {}
    for top, _, files in os.walk(d):
        for f in files:
            p = os.path.join(top, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, d)] = fh.read()
    return out


class Sweep:
    def __init__(self, a):
        self.a = a
        self.snap = a.snap
        self.work = a.work
        self.fails = []

    def restore(self):
        """Makes work/ equal to the snapshot again, in place: directories
        that exist in both are kept (same inodes, as the stores' indexes
        recorded them), files are copied over, anything new is removed,
        and directory times are put back last."""
        dirs = []
        for top, subdirs, files in os.walk(self.work, topdown=False):
            rel = os.path.relpath(top, self.work)
            s_top = os.path.join(self.snap, rel)
            if not os.path.isdir(s_top):
                shutil.rmtree(top)
                continue
            for f in files:
                if not os.path.isfile(os.path.join(s_top, f)):
                    os.unlink(os.path.join(top, f))
        for top, subdirs, files in os.walk(self.snap):
            rel = os.path.relpath(top, self.snap)
            w_top = os.path.join(self.work, rel)
            os.makedirs(w_top, exist_ok=True)
            for f in files:
                shutil.copy2(os.path.join(top, f), os.path.join(w_top, f))
            dirs.append((top, w_top))
        for s_top, w_top in reversed(dirs):
            shutil.copystat(s_top, w_top)

    def run(self, env_extra):
        env = dict(os.environ)
        for k in ("RELAY_WAY", "RELAY_OFF", "RELAY_MASK", "RELAY_DUMP",
                  "RELAY_STOP", "RELAY_DELAY"):
            env.pop(k, None)
        env.update(env_extra)
        comp = ["-z"] if self.a.mode == "lz4" else ["--no-compress"]
        # -vv: B's log lines travel as LOG records, so that LOG is in
        # the stream down too.
        cmd = [self.a.msync, "-vv", "-e", "python3 " + RELAY,
               "--remote-msync", self.a.msync, "--state-dir",
               os.path.join(self.work, "state")] + comp + [
               os.path.join(self.work, "A"),
               "relayhost:" + os.path.join(self.work, "B")]
        try:
            p = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=RUN_BOUND)
        except subprocess.TimeoutExpired:
            return None, b"(no end within %d s)" % RUN_BOUND
        return p.returncode, p.stderr

    def views(self):
        return (view(os.path.join(self.work, "A")),
                view(os.path.join(self.work, "B")))

    def reference(self):
        self.restore()
        pre = self.views()
        self.pre_all = contents(pre[0]) | contents(pre[1])
        self.pre_state = state_bytes(os.path.join(self.work, "state"))
        dump = os.path.join(self.a.dumps, self.a.mode)
        os.makedirs(dump, exist_ok=True)
        rc, err = self.run({"RELAY_DUMP": dump})
        if rc != 0:
            sys.stderr.write(err.decode("utf-8", "replace"))
            raise SystemExit("the clean reference run failed: %s" % rc)
        self.ref = self.views()
        self.ref_all = contents(self.ref[0]) | contents(self.ref[1])
        if self.ref[0] != self.ref[1]:
            raise SystemExit("the reference run did not converge")
        # Deleted by the reference run: may go in a failed run too.
        self.deleted = self.pre_all - self.ref_all
        with open(os.path.join(dump, "up"), "rb") as f:
            up = f.read()
        with open(os.path.join(dump, "down"), "rb") as f:
            down = f.read()
        return up, down

    def plan(self, stream):
        """[(offset, what)] for one direction's dump."""
        nl = stream.index(b"\n") + 1
        offs = [(0, "handshake 'm'"), (6, "handshake version"),
                (nl - 2, "handshake end")]
        pos = nl
        if self.a.mode == "plain":
            seen = set()
            while pos + REC_HDR <= len(stream):
                t, n = struct.unpack(">BI", stream[pos:pos + 5])
                name = NAMES.get(t, str(t))
                if t == 1:
                    # The last byte of B's path in HELLO: a changed one
                    # once made the server sync into a sibling directory.
                    k = stream.find(b"/B", pos, pos + REC_HDR + n)
                    if k > 0:
                        offs.append((k + 1, "HELLO path's last byte"))
                if t not in seen:
                    seen.add(t)
                    for k, w in ((0, "type"), (2, "length"),
                                 (6, "payload check"),
                                 (10, "header check")):
                        offs.append((pos + k, "%s %s" % (name, w)))
                    for k, w in ((0, "first"), (n // 2, "middle"),
                                 (n - 1, "last")):
                        if n > 0:
                            offs.append((pos + REC_HDR + k,
                                         "%s payload %s" % (name, w)))
                pos += REC_HDR + n
            self.types = seen
        else:
            # Every record type, through the literals that decode into
            # its header and its payload: a changed literal changes just
            # that byte of the record stream, as in plain mode.
            raw, lit = lz4_records(stream, pos)
            seen = set()
            rp = 0
            while rp + REC_HDR <= len(raw):
                t, n = struct.unpack(">BI", raw[rp:rp + 5])
                name = NAMES.get(t, str(t))
                if t not in seen:
                    hit = False
                    for lo, hi, w in ((rp, rp + 1, "type"),
                                      (rp + 1, rp + 5, "length"),
                                      (rp + 5, rp + 9, "payload check"),
                                      (rp + 9, rp + 13, "header check")):
                        o = literal_near(lit, lo, hi, lo)
                        if o is not None:
                            offs.append((o, "%s %s (lz4 literal)" %
                                         (name, w)))
                            hit = True
                    b = rp + REC_HDR
                    for k, w in ((0, "first"), (n // 2, "middle"),
                                 (n - 1, "last")):
                        if n == 0:
                            break
                        o = literal_near(lit, b, b + n, b + k)
                        if o is not None:
                            offs.append((o, "%s payload %s (lz4 literal)"
                                         % (name, w)))
                            hit = True
                    if hit:
                        seen.add(t)
                rp += REC_HDR + n
            self.types = seen
            blocks = 0
            while pos + LZ4_HDR <= len(stream):
                clen = struct.unpack(">I", stream[pos:pos + 4])[0]
                if blocks < 2 or pos + LZ4_HDR + clen >= len(stream):
                    for k, w in ((1, "clen"), (7, "rlen"), (9, "check")):
                        offs.append((pos + k, "block %d %s" % (blocks, w)))
                step = max(1, clen // 6)
                for k in range(0, clen, step):
                    offs.append((pos + LZ4_HDR + k,
                                 "block %d data +%d" % (blocks, k)))
                pos += LZ4_HDR + clen
                blocks += 1
        return sorted(set(o for o in offs if 0 <= o[0] < len(stream)))

    def around(self):
        """Entries next to and inside work/: a run must add none."""
        up = os.path.dirname(self.work)
        return (sorted(os.listdir(up)), sorted(os.listdir(self.work)))

    def case(self, way, off, what):
        self.restore()
        before = self.around()
        rc, err = self.run({"RELAY_WAY": way, "RELAY_OFF": str(off)})
        line = "%-4s %6d %-28s exit %s" % (way, off, what, rc)
        why = None
        if self.around() != before:
            why = "a directory appeared next to the stores"
        elif rc == 0:
            if self.views() != self.ref:
                why = "exit 0 but the stores differ from the clean run"
        elif rc in (65, 76):
            post = self.views()
            post_all = contents(post[0]) | contents(post[1])
            st = state_bytes(os.path.join(self.work, "state"))
            if st != self.pre_state:
                why = "the state changed"
            elif post_all - self.pre_all - self.ref_all:
                why = "a damaged or unknown message was saved"
            elif (self.pre_all - self.deleted) - post_all:
                why = "a message was lost"
            else:
                rc2, err2 = self.run({})
                if rc2 != 0:
                    why = "the clean re-run exited %s" % rc2
                    err = err + b"\n--- re-run ---\n" + err2
                elif self.views() != self.ref:
                    why = "the clean re-run did not end as the clean run"
        else:
            why = "exit %s (want 0, 65 or 76)" % rc
        print(line + ("" if why is None else "  FAIL: " + why))
        if why is not None:
            self.fails.append(line + ": " + why)
            for l in err.decode("utf-8", "replace").splitlines()[-8:]:
                print("      | " + l)
        return rc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--msync", required=True)
    ap.add_argument("--snap", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--dumps", required=True)
    ap.add_argument("--mode", choices=("plain", "lz4"), required=True)
    a = ap.parse_args()
    s = Sweep(a)
    up, down = s.reference()
    print("# %s: reference run: %d bytes up, %d down" %
          (a.mode, len(up), len(down)))
    codes = collections.Counter()
    types = {}
    for way, stream in (("up", up), ("down", down)):
        offs = s.plan(stream)
        types[way] = sorted(NAMES[t] for t in s.types if t in NAMES)
        for off, what in offs:
            codes[s.case(way, off, what)] += 1
    for way, t in types.items():
        print("# record types hit %s: %s" % (way, " ".join(t)))
    print("# %s: %d runs, exit statuses: %s" %
          (a.mode, sum(codes.values()),
           ", ".join("%s x%d" % (k, v) for k, v in sorted(
               codes.items(), key=lambda kv: str(kv[0])))))
    if s.fails:
        print("# %d FAILED:" % len(s.fails))
        for f in s.fails:
            print("#   " + f)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
