#!/usr/bin/env python3
"""state_dump.py FILE: one line per mailbox of an msync sync-state file,
"NAME<TAB>md5 of its entry's bytes", sorted by name; an independent
reader of the format that src/state.c documents (magic, version, nmbox,
mailboxes, XXH3 checksum), so a test can tell which mailboxes' state a
run changed without asking msync.  Exit 1 on a malformed file."""
import hashlib
import struct
import sys


def main(path):
    data = open(path, "rb").read()
    if len(data) < 24 or data[:8] != b"MSYNCST\0":
        sys.exit("state_dump: not a state file: %s" % path)
    version, nmbox = struct.unpack_from("<II", data, 8)
    if version != 1:
        sys.exit("state_dump: unknown version %d" % version)
    off, end, out = 16, len(data) - 8, []
    for _ in range(nmbox):
        start = off
        off += 16
        (namelen,) = struct.unpack_from("<I", data, off)
        off += 4
        name = data[off:off + namelen].decode("utf-8", "replace")
        off += namelen + 2 * 4 + 2 * 8
        (nmsgs,) = struct.unpack_from("<I", data, off)
        off += 4
        for _ in range(nmsgs):
            off += 16 + 2 * 4 + 2
            for _ in range(2):
                (kwlen,) = struct.unpack_from("<H", data, off)
                off += 2 + kwlen
        if off > end:
            sys.exit("state_dump: truncated")
        out.append("%s\t%s" % (name, hashlib.md5(data[start:off]).hexdigest()))
    if off != end:
        sys.exit("state_dump: %d trailing bytes" % (end - off))
    for line in sorted(out):
        print(line)


if __name__ == "__main__":
    main(sys.argv[1])
