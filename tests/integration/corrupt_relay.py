#!/usr/bin/env python3
"""corrupt_relay.py -- an --rsh stand-in that runs the "remote" command on
this machine and relays its stdin/stdout, optionally changing one byte.

msync runs it as it would run ssh:

    corrupt_relay.py [-p PORT] [-l USER] HOST COMMAND...

The options and HOST are ignored; COMMAND (joined by spaces, as ssh does)
runs under `sh -c` with pipes, and the relay copies bytes both ways:
"up" is msync -> command (side A to side B), "down" the other way.

Environment (all optional):
    RELAY_WAY    up or down: the direction to change a byte in
    RELAY_OFF    the offset (from 0, counting every byte of that
                 direction, handshake line included) of the byte to change
    RELAY_MASK   the XOR mask (default 0x01 << (offset % 8))
    RELAY_DUMP   a directory: write everything relayed, unchanged, to
                 DIR/up and DIR/down (to plan offsets from)
    RELAY_STOP   if set (to anything): instead of changing the byte at
                 RELAY_OFF, stop forwarding RELAY_WAY from there on (what
                 comes is read and dropped): a peer that goes quiet but
                 keeps its connection open

It only talks to its parent and its child.  Every wait is bounded by the
child's and the parent's lifetime (it stops when both directions end).
"""

import os
import select
import subprocess
import sys


def main():
    args = sys.argv[1:]
    while args and args[0] in ("-p", "-l"):
        args = args[2:]
    if len(args) < 2:
        sys.stderr.write("corrupt_relay.py: no command\n")
        return 255
    cmd = " ".join(args[1:])
    way = os.environ.get("RELAY_WAY", "")
    off = int(os.environ.get("RELAY_OFF", "-1"))
    mask = int(os.environ.get("RELAY_MASK", "0"), 0) or (1 << (off % 8)
                                                         if off >= 0 else 0)
    stop = os.environ.get("RELAY_STOP", "")
    dump = os.environ.get("RELAY_DUMP")
    dumps = {}
    if dump:
        for d in ("up", "down"):
            dumps[d] = open(os.path.join(dump, d), "wb")

    child = subprocess.Popen(["sh", "-c", cmd], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, bufsize=0)
    # Each direction: [source fd, destination fd, name, bytes read,
    # bytes waiting for the destination].  Writes never block, so a
    # side that stops reading one direction does not hold up the other
    # (as ssh, which buffers each channel on its own).
    cin, cout = child.stdin.fileno(), child.stdout.fileno()
    ways = [[0, cin, "up", 0, bytearray()], [cout, 1, "down", 0, bytearray()]]
    for fd in (cin, 1):
        os.set_blocking(fd, False)
    open_in = {0: ways[0], cout: ways[1]}
    up_eof = [False]        # msync closed our stdin: close the command's
    while True:
        if up_eof[0] and not ways[0][4] and not child.stdin.closed:
            child.stdin.close()
        rl = [fd for fd, w in open_in.items() if len(w[4]) < (1 << 20)]
        wl = [w[1] for w in ways if w[4]]
        if not open_in and not wl:
            break
        r, wr, _ = select.select(rl, wl, [], 1.0)
        for w in ways:
            if w[1] in wr and w[4]:
                try:
                    n = os.write(w[1], w[4])
                    del w[4][:n]
                except BlockingIOError:
                    pass
                except OSError:
                    # The reader went away: drop what it would get.
                    w[4].clear()
        for src in r:
            w = open_in[src]
            try:
                data = os.read(src, 65536)
            except OSError:
                data = b""
            if not data:
                del open_in[src]
                if w[2] == "down":
                    # The command's output ended: flush it and end, as
                    # ssh does (our stdin may be the same socket as our
                    # stdout, so closing fd 1 alone would not show it).
                    os.set_blocking(1, True)
                    try:
                        os.write(1, w[4]) if w[4] else None
                    except OSError:
                        pass
                    for f in dumps.values():
                        f.close()
                    return child.wait()
                up_eof[0] = True
                continue
            if w[2] in dumps:
                dumps[w[2]].write(data)
            buf = bytearray(data)
            done = w[3]
            w[3] = done + len(data)
            if w[2] == way:
                if stop and done + len(buf) > off:
                    buf = buf[:max(0, off - done)]
                elif not stop and done <= off < done + len(buf):
                    buf[off - done] ^= mask
            w[4] += buf
    for f in dumps.values():
        f.close()
    return child.wait()


if __name__ == "__main__":
    sys.exit(main())
