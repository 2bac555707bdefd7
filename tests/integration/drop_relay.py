#!/usr/bin/env python3
"""drop_relay.py -- an IMAP relay that misbehaves on cue, for t8650-t8699.

Sits between msync (imap://...;tls=none, MSYNC_IMAP_NO_COMPRESS set, so
the commands are readable) and the test's Dovecot on 127.0.0.1, and
counts the client's commands (a command line with its literals) on each
connection.  Python 3 standard library only.

    drop_relay.py UPSTREAM_PORT PLAN LOG [HOOK]

Prints its own port (DROP_RELAY_PORT if set) on the first line of stdout, then serves connections
until killed.  PLAN is a comma-separated list, one item per connection in
the order they arrive; connections past the list are passed through:

    pass     forward everything
    cut:N    forward command N to the server, then forward nothing more
             to the client, give the server 0.3 s to act on it, and close
             both sides (an APPEND then arrives but its answer is lost)
    bye:N    answer command N, instead of forwarding it, with
             "* BYE [UNAVAILABLE] Request is throttled. Suggested Backoff
             Time: 20 milliseconds" and close
    no:N     answer command N with "TAG NO [THROTTLED] ..." and go on
             (a command with a synchronising literal is forwarded)
    slow:N   forward command N, then pass what the server sends one byte
             every 50 ms (a server that throttles by bandwidth)
    hook:N   run HOOK before forwarding command N, then go on as pass
             (something changes on the server between two commands)

N may also be a command's name (cut:APPEND, no:APPEND), or its first two
words ("cut:UID MOVE"): the first command of that name on the
connection, however many came before it.

HOOK, if given, is a shell command run (and waited for) at each cut, bye,
no or hook, before the relay goes on: t8660 and t8720 change a
UIDVALIDITY there.

LOG gets one line per command: "CONN N VERB" (VERB: the command's first
two words, e.g. "UID FETCH", "APPEND INBOX"), and "CONN N
cut|bye|no|slow|hook".
"""
import os
import socket
import subprocess
import sys
import threading
import time

UP = int(sys.argv[1])
PLAN = [p for p in sys.argv[2].split(",") if p]
LOG = open(sys.argv[3], "a", buffering=1)
HOOK = sys.argv[4] if len(sys.argv) > 4 else None
lock = threading.Lock()


def log(s):
    with lock:
        LOG.write(s + "\n")


def literal_of(line):
    """(size, synchronising) of the literal that ends line, or None."""
    s = line.rstrip(b"\r\n")
    if not s.endswith(b"}") or b"{" not in s:
        return None
    n = s[s.rindex(b"{") + 1:-1]
    sync = not n.endswith(b"+")
    n = n.rstrip(b"+")
    if not n.isdigit() or len(n) > 12:
        return None
    return int(n), sync


def serve(conn_no, c, action):
    u = socket.create_connection(("127.0.0.1", UP))
    state = {"mute": False, "slow": False}
    slock = threading.Lock()    # one writer to the client at a time
    kind, _, arg = action.partition(":")
    at = int(arg) if arg.isdigit() else 0
    at_verb = arg.upper().encode() if arg and not arg.isdigit() else None

    def down():
        try:
            while True:
                b = u.recv(65536)
                if not b:
                    break
                with slock:
                    if state["mute"]:
                        continue
                    if not state["slow"]:
                        c.sendall(b)
                        continue
                # A trickle, bounded by the client closing on it.
                for i in range(len(b)):
                    c.sendall(b[i:i + 1])
                    time.sleep(0.05)
        except OSError:
            pass
        finally:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    t = threading.Thread(target=down, daemon=True)
    t.start()
    f = c.makefile("rb")
    n = 0
    try:
        while True:
            line = f.readline(1 << 20)
            if not line:
                break
            n += 1
            parts = [line]
            words = line.rstrip(b"\r\n").split(b" ")
            log("%d %d %s" % (conn_no, n,
                              b" ".join(words[1:3]).decode("latin-1")))
            hit = kind != "pass" and (n == at or (
                at_verb is not None and len(words) > 1 and
                b" ".join(words[1:1 + len(at_verb.split(b" "))]).upper()
                == at_verb))
            if hit:
                at_verb = None          # only the first of that name
            synced = False
            # A command is its line and the literals that follow it.
            while True:
                lit = literal_of(parts[-1])
                if lit is None:
                    break
                size, sync = lit
                if sync:
                    # The client waits for the server's "+": forward.
                    u.sendall(b"".join(parts))
                    parts = []
                    synced = True
                    lit_bytes = f.read(size)
                    rest = f.readline(1 << 20)
                    parts = [lit_bytes + rest]
                    continue
                data = f.read(size)
                rest = f.readline(1 << 20)
                parts.append(data + rest)
            if hit and kind == "cut":
                with slock:
                    state["mute"] = True
                u.sendall(b"".join(parts))
                log("%d %d cut" % (conn_no, n))
                time.sleep(0.3)
                if HOOK:
                    subprocess.run(HOOK, shell=True)
                break
            if hit and kind == "bye":
                with slock:
                    state["mute"] = True
                log("%d %d bye" % (conn_no, n))
                if HOOK:
                    subprocess.run(HOOK, shell=True)
                c.sendall(b"* BYE [UNAVAILABLE] Request is throttled. "
                          b"Suggested Backoff Time: 20 milliseconds\r\n")
                break
            if hit and kind == "hook":
                log("%d %d hook" % (conn_no, n))
                if HOOK:
                    subprocess.run(HOOK, shell=True)
            if hit and kind == "slow":
                with slock:
                    state["slow"] = True
                log("%d %d slow" % (conn_no, n))
            if hit and kind == "no" and not synced:
                log("%d %d no" % (conn_no, n))
                if HOOK:
                    subprocess.run(HOOK, shell=True)
                with slock:
                    c.sendall(words[0] + b" NO [THROTTLED] Too many "
                              b"requests, try again later\r\n")
                continue
            u.sendall(b"".join(parts))
    except OSError:
        pass
    finally:
        for s in (c, u):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


def main():
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # DROP_RELAY_PORT: the same port for every relay of a test, so that
    # msync sees one location (its state and cache are per host:port).
    srv.bind(("127.0.0.1", int(os.environ.get("DROP_RELAY_PORT", "0"))))
    srv.listen(8)
    print(srv.getsockname()[1], flush=True)
    k = 0
    while True:
        c, _ = srv.accept()
        action = PLAN[k] if k < len(PLAN) else "pass"
        k += 1
        log("%d 0 connect %s" % (k, action))
        threading.Thread(target=serve, args=(k, c, action),
                         daemon=True).start()


try:
    main()
except KeyboardInterrupt:
    pass
