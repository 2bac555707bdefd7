#!/usr/bin/env python3
"""imap_append.py -- another IMAP client filling an account, for t8700.

    imap_append.py PORT USER PASS MAILBOX FLAGS FILE...

Logs in over imaps on 127.0.0.1:PORT (the test's self-signed
certificate is not checked: 127.0.0.1 only) and APPENDs each FILE to
MAILBOX with FLAGS (e.g. '(\\Flagged)', or '' for none) and the current
time as INTERNALDATE, as a migration tool other than msync would.
Python 3 standard library only.
"""
import imaplib
import ssl
import sys
import time


def main():
    port, user, pw, mbox, flags = sys.argv[1:6]
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    c = imaplib.IMAP4_SSL("127.0.0.1", int(port), ssl_context=ctx)
    c.login(user, pw)
    for path in sys.argv[6:]:
        with open(path, "rb") as f:
            data = f.read().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        typ, _ = c.append(mbox, flags or None,
                          imaplib.Time2Internaldate(time.time()), data)
        if typ != "OK":
            sys.exit("append failed: %s" % typ)
    c.logout()


main()
