#!/usr/bin/env python3
"""cut_relay.py -- a TCP relay that drops its connection on cue, for
t2590 (server to server: one side of the relay lost mid-run).

    cut_relay.py UPSTREAM_PORT CUT_BYTES

Prints its own port (127.0.0.1) on the first line of stdout, then
serves connections until killed.  Each connection is passed through
both ways until the bytes it carried (both ways) pass CUT_BYTES; then both sockets are shut down and closed with SO_LINGER 0,
as a dropped network would.  CUT_BYTES 0 never cuts.  Python 3 standard library only.
"""
import socket
import struct
import sys
import threading

UP = int(sys.argv[1])
CUT = int(sys.argv[2])


def reset(s):
    # shutdown first: it wakes the other thread's recv on this socket,
    # which a close alone would not (the socket would stay up).
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                     struct.pack("ii", 1, 0))
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        s.close()
    except OSError:
        pass


def serve(c):
    u = socket.create_connection(("127.0.0.1", UP))
    state = {"down": 0, "cut": False}
    lock = threading.Lock()

    def pipe(src, dst):
        try:
            while True:
                b = src.recv(65536)
                if not b:
                    dst.shutdown(socket.SHUT_WR)
                    return
                with lock:
                    if state["cut"]:
                        return
                    state["down"] += len(b)
                    if CUT and state["down"] > CUT:
                        state["cut"] = True
                        reset(c)
                        reset(u)
                        return
                dst.sendall(b)
        except OSError:
            return

    t = threading.Thread(target=pipe, args=(u, c), daemon=True)
    t.start()
    pipe(c, u)
    t.join()
    reset(c)
    reset(u)


def main():
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    print(ls.getsockname()[1], flush=True)
    while True:
        c, _ = ls.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


main()
