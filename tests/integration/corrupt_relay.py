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
    RELAY_STOP   up or down: stop forwarding that direction after
                 RELAY_OFF bytes (the bytes are read and dropped), a peer
                 that goes quiet but keeps its connection open
    RELAY_DELAY  seconds: sleep this long once, before forwarding the
                 byte at RELAY_OFF of RELAY_WAY (a slow but alive link)

It only talks to its parent and its child.  Every wait is bounded by the
child's and the parent's lifetime (it stops when both directions end).
"""

import os
import select
import subprocess
import sys
import time


def write_all(fd, buf):
    mv = memoryview(bytes(buf))
    while len(mv) > 0:
        mv = mv[os.write(fd, mv):]


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
    delay = float(os.environ.get("RELAY_DELAY", "0"))
    dump = os.environ.get("RELAY_DUMP")
    dumps = {}
    if dump:
        for d in ("up", "down"):
            dumps[d] = open(os.path.join(dump, d), "wb")

    child = subprocess.Popen(["sh", "-c", cmd], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, bufsize=0)
    # (source fd, destination fd, name, bytes so far)
    chans = {0: [child.stdin.fileno(), "up", 0],
             child.stdout.fileno(): [1, "down", 0]}
    delayed = False
    while chans:
        r, _, _ = select.select(list(chans), [], [], 1.0)
        for src in r:
            dst, name, done = chans[src]
            try:
                data = os.read(src, 65536)
            except OSError:
                data = b""
            if not data:
                # End of this direction: pass it on.  When the command's
                # output ends, end as ssh does (our stdin may be the same
                # socket as our stdout: closing fd 1 alone would not
                # show the end to msync).
                if name == "up":
                    child.stdin.close()
                    del chans[src]
                    continue
                for f in dumps.values():
                    f.close()
                return child.wait()
            if name in dumps:
                dumps[name].write(data)
            buf = bytearray(data)
            chans[src][2] = done + len(data)
            if name == way and done <= off < done + len(buf):
                if stop:
                    buf = buf[:off - done]
                elif delay > 0 and not delayed:
                    write_all(dst, buf[:off - done])
                    buf = buf[off - done:]
                    time.sleep(delay)
                    delayed = True
                else:
                    buf[off - done] ^= mask
            elif name == way and stop and done > off:
                buf = bytearray()
            try:
                write_all(dst, buf)
            except OSError:
                # The reader went away: drop this direction.
                del chans[src]
    for f in dumps.values():
        f.close()
    return child.wait()


if __name__ == "__main__":
    sys.exit(main())
