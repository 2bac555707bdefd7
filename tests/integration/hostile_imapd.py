#!/usr/bin/env python3
"""hostile_imapd.py -- a scripted, hostile IMAP server for t8530.

Listens on 127.0.0.1 (a free port, printed on the first line of stdout),
serves ONE connection in clear (the client uses imap://...;tls=none),
plays a small but correct server for one mailbox INBOX with one message,
and misbehaves as CASE says.  Python 3 standard library only.

    hostile_imapd.py CASE

Cases (where the misbehaviour happens):
    good         none: a well-behaved server (the control)
    biglit       LIST answers with a literal of 4294967295 bytes
    bigline      LIST answers with a 200 KiB line that never ends
    garbage      the message listing is a FETCH with a broken list
    badtag       a tagged OK for a command never sent
    bye-fetch    the body FETCH gets half a body, then the connection
                 closes (as a server that says BYE and goes)
    bye-list     the message listing gets "* BYE" and a close
    stall        the body FETCH is never answered
    hugebody     the body FETCH announces a 5 GiB literal
    toobig       an empty INBOX whose APPEND refuses a message over 1000
                 bytes with NO [TOOBIG] and takes the others (a second
                 line on stdout per APPEND: "appended N" or "refused N")
    starttls-clear  offers STARTTLS, answers it OK, and goes on in clear
                 (a client must fail its handshake and send nothing more)

With HOSTILE_IMAPD_LOG set, every line received is appended to that file
(whether a client sent its login where it should not have).
"""
import os
import socket
import sys
import time

CASE = sys.argv[1] if len(sys.argv) > 1 else "good"
BODY = (b"From: a@example.org\r\nSubject: hostile\r\n"
        b"Message-ID: <hostile@x>\r\n\r\nhello\r\n")


def main():
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    print(srv.getsockname()[1], flush=True)
    srv.settimeout(60)
    c, _ = srv.accept()
    c.settimeout(60)
    f = c.makefile("rb")

    def send(b):
        c.sendall(b)

    caps = b"IMAP4rev1 AUTH=PLAIN SASL-IR UIDPLUS"
    if CASE == "starttls-clear":
        caps += b" STARTTLS"
    send(b"* OK [CAPABILITY " + caps + b"] hostile\r\n")
    log = os.environ.get("HOSTILE_IMAPD_LOG")
    stored = []     # toobig: sizes of the appended messages
    for line in f:
        if log:
            with open(log, "ab") as lf:
                lf.write(line)
        words = line.rstrip(b"\r\n").split(b" ")
        tag, cmd = words[0], b" ".join(words[1:3]).upper()
        up = line.upper()
        if cmd.startswith(b"STARTTLS") and CASE == "starttls-clear":
            send(tag + b" OK begin TLS now\r\n")
            f.read1(4096)   # the ClientHello, answered in clear
            send(b"* OK still in clear\r\n")
        elif cmd.startswith(b"AUTHENTICATE"):
            send(tag + b" OK done\r\n")
        elif cmd.startswith(b"CAPABILITY"):
            send(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN UIDPLUS\r\n" +
                 tag + b" OK\r\n")
        elif cmd.startswith(b"LIST") and b'"" ""' in line:
            send(b'* LIST (\\Noselect) "/" ""\r\n' + tag + b" OK\r\n")
        elif cmd.startswith(b"LIST"):
            if CASE == "biglit":
                send(b'* LIST () "/" {4294967295}\r\n' + b"x" * 1000)
                time.sleep(2)
                return
            if CASE == "bigline":
                try:
                    send(b'* LIST () "/" "' + b"a" * (200 * 1024))
                except OSError:
                    pass
                time.sleep(2)
                return
            send(b'* LIST () "/" INBOX\r\n' + tag + b" OK\r\n")
        elif cmd.startswith(b"STATUS") and CASE == "toobig":
            send(b"* STATUS INBOX (MESSAGES %d UIDNEXT %d UIDVALIDITY 7)\r\n"
                 % (len(stored), len(stored) + 1) + tag + b" OK\r\n")
        elif cmd.startswith(b"STATUS"):
            send(b"* STATUS INBOX (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 7)\r\n" +
                 tag + b" OK\r\n")
        elif cmd.startswith(b"APPEND"):
            hdr = line.rstrip(b"\r\n")
            size = int(hdr[hdr.rindex(b"{") + 1:].rstrip(b"}+"))
            if not hdr.endswith(b"+}"):
                send(b"+ go\r\n")
            f.read(size)
            f.readline()
            if size > 1000:
                print("refused", size, flush=True)
                send(tag + b" NO [TOOBIG] message too big\r\n")
            else:
                stored.append(size)
                print("appended", size, flush=True)
                send(tag + b" OK [APPENDUID 7 %d] done\r\n" % len(stored))
        elif (cmd.startswith(b"EXAMINE") or cmd.startswith(b"SELECT")) \
                and CASE == "toobig":
            send(b"* %d EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n" % len(stored) +
                 tag + b" OK\r\n")
        elif cmd.startswith(b"UID FETCH") and CASE == "toobig":
            for i in range(len(stored)):
                send(b"* %d FETCH (UID %d FLAGS ())\r\n" % (i + 1, i + 1))
            send(tag + b" OK\r\n")
        elif cmd.startswith(b"EXAMINE") or cmd.startswith(b"SELECT"):
            send(b"* 1 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n" + tag +
                 b" OK\r\n")
        elif cmd.startswith(b"UID FETCH") and b"BODY.PEEK[]" not in up:
            if CASE == "garbage":
                send(b"* 1 FETCH (UID 1 FLAGS (\\Seen\r\n" + tag + b" OK\r\n")
            elif CASE == "badtag":
                send(b"zz99 OK what\r\n")
            elif CASE == "bye-list":
                send(b"* BYE going away\r\n")
                return
            else:
                send(b'* 1 FETCH (UID 1 FLAGS (\\Seen) INTERNALDATE '
                     b'"01-Jan-2024 00:00:00 +0000" RFC822.SIZE %d)\r\n'
                     % len(BODY) + tag + b" OK\r\n")
        elif cmd.startswith(b"UID FETCH"):
            if CASE == "stall":
                time.sleep(30)
                return
            if CASE == "hugebody":
                send(b"* 1 FETCH (UID 1 BODY[] {5368709120}\r\n" + b"y" * 4096)
                time.sleep(2)
                return
            if CASE == "bye-fetch":
                send(b"* 1 FETCH (UID 1 BODY[] {%d}\r\n" % len(BODY) +
                     BODY[:20])
                return
            send(b'* 1 FETCH (UID 1 INTERNALDATE "01-Jan-2024 00:00:00 '
                 b'+0000" BODY[] {%d}\r\n' % len(BODY) + BODY + b")\r\n" +
                 tag + b" OK\r\n")
        elif cmd.startswith(b"LOGOUT"):
            send(b"* BYE bye\r\n" + tag + b" OK\r\n")
            return
        else:
            send(tag + b" BAD unknown\r\n")


try:
    main()
except (BrokenPipeError, ConnectionResetError, socket.timeout):
    pass
