# lib-dovecot-mbox.sh -- Dovecot's doveadm as an independent reader and
# writer of the stores of the mbox tests (t8010, t8140, t8150, t8160)
# and of t7000's Maildirs, without a Dovecot daemon.  Source it after
# lib.sh; a test that uses doveadm still names the DOVECOT prereq itself.
#
# doveadm runs as nobody when the tests run as root (Dovecot refuses
# root as a mail user): lib.sh puts the trash where nobody can reach it,
# and dove_own hands a store to that user before doveadm opens it.
#
#   dove_conf [LINE...]     writes $DOVE_CONF: base and state directories
#                           in the trash, no SSL, Dovecot's user, one
#                           INBOX namespace separated by '/', then LINEs
#   dove_own DIR            DIR (recursively) to Dovecot's user, when root
#   dove_adm LOCATION ARGS  doveadm ARGS with mail_location=LOCATION as
#                           the user msynctest
#   dove_logged LOCATION ARGS  the same, its stderr shown and also kept
#                           in $TRASH/doveadm.err (which a test checks
#                           stays empty)
#   dove_digest_json        Dovecot's `-f json fetch 'mailbox flags text'`
#                           on stdin -> one line per message, sorted:
#                           MAILBOX <tab> MD5 of the text (CRLF folded to
#                           LF) <tab> flags as Maildir letters, then the
#                           keywords ("-" for none).  SKIPFROM=1 leaves
#                           out messages with a ">*From " line.
#   mboxo_edge_messages DIR messages with every kind of From line (at
#                           the start of a body, quoted, after an empty
#                           line, without a final newline, CRLF, in the
#                           header block, in the last line) in DIR/cur

if test_have_prereq ROOT; then
	DOVE_UID=65534 DOVE_GID=65534
else
	DOVE_UID=$(id -u) DOVE_GID=$(id -g)
fi
DOVE_CONF=$TRASH/dovecot.conf

dove_conf() {
	local l
	mkdir -p "$TRASH/dovecot/run" "$TRASH/dovecot/state" \
	    "$TRASH/dovecot/home" &&
	cat >"$DOVE_CONF" <<-EOF &&
	base_dir = $TRASH/dovecot/run
	state_dir = $TRASH/dovecot/state
	ssl = no
	first_valid_uid = 1
	first_valid_gid = 1
	mail_uid = $DOVE_UID
	mail_gid = $DOVE_GID
	mail_home = $TRASH/dovecot/home
	mail_location = maildir:$TRASH/dovecot/none
	namespace inbox {
	  inbox = yes
	  separator = /
	}
	EOF
	for l in "$@"; do
		printf '%s\n' "$l" >>"$DOVE_CONF" || return 1
	done
}

dove_own() {
	if test_have_prereq ROOT; then
		chown -R "$DOVE_UID:$DOVE_GID" "$1"
	fi
}

dove_adm() {
	local loc=$1
	shift
	USER=msynctest doveadm -c "$DOVE_CONF" -o "mail_location=$loc" "$@"
}

dove_logged() {
	local rc
	dove_adm "$@" 2>"$TRASH/doveadm.last"
	rc=$?
	cat "$TRASH/doveadm.last" >&2
	cat "$TRASH/doveadm.last" >>"$TRASH/doveadm.err"
	return $rc
}

dove_digest_json() {
	SKIPFROM=${SKIPFROM:-0} python3 -c '
import hashlib, json, os, re, sys
sysf = {"\\Seen": "S", "\\Answered": "R", "\\Flagged": "F",
        "\\Deleted": "T", "\\Draft": "D"}
data = sys.stdin.read()
out = []
for m in json.loads(data) if data.strip() else []:
    t = m["text"].replace("\r\n", "\n").encode()
    if os.environ["SKIPFROM"] == "1" and re.search(rb"(^|\n)>*From ", t):
        continue
    fl = [f for f in m["flags"].split() if f != "\\Recent"]
    l = "".join(sorted(sysf[f] for f in fl if f in sysf))
    k = " ".join(sorted(f for f in fl if f not in sysf))
    s = " ".join(x for x in (l, k) if x) or "-"
    out.append("%s\t%s\t%s" % (m["mailbox"], hashlib.md5(t).hexdigest(), s))
print("\n".join(sorted(out)))
'
}

mboxo_edge_messages() {
	local d=$1
	printf 'Subject: from lines\n\nFrom the start\n>From one\n>>From two\n\nFrom after a blank\n' >"$d/cur/1.M1P1.edge:2,S" &&
	printf 'Subject: quoted only\n\n>From one\n>>From two\n\n>From after a blank\n' >"$d/cur/2.M1P1.edge:2,F" &&
	printf 'Subject: no final newline\n\n>From last' >"$d/cur/3.M1P1.edge:2,RS" &&
	printf 'Subject: crlf\r\n\r\nline\r\nFrom crlf\r\n>From crlf\r\n' >"$d/cur/4.M1P1.edge:2," &&
	printf 'Subject: plain\n\nnothing special\n' >"$d/cur/5.M1P1.edge:2,T" &&
	printf 'Subject: headers only, from\nFrom here\n' >"$d/cur/6.M1P1.edge:2,D" &&
	printf 'Subject: from in the last line\n\nx\nFrom the end' >"$d/cur/7.M1P1.edge:2,"
}
