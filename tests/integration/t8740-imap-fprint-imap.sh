#!/usr/bin/env bash
test_description='IMAP -> IMAP, first sync against a destination another tool half filled: the source reads no body the destination already holds (header fingerprints from the destination'\''s own listing), no duplicate; without fingerprints every source body is read'
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-imapd.sh"
test_require_prereq IMAPD

# Dovecot counts, per session, the bodies and headers it sent.
IMAPD_EXTRA_CONF=$IMAPD_COUNTERS
PASSCMD="echo $IMAPD_PASS"

# append USER FLAGS FILE...: another client's APPENDs (imap_append.py).
append() {
	local u=$1 fl=$2
	shift 2
	python3 "$TEST_DIR/imap_append.py" "$IMAPS_PORT" "$u" "$IMAPD_PASS" \
	    INBOX "$fl" "$@"
}
# fresh: no sync state, no cache, Dovecot's log (its counters) cleared.
fresh() {
	rm -rf "$XDG_STATE_HOME/msync" "$XDG_CACHE_HOME/msync" &&
	: >"$IMAPD_DIR/log"
}

test_expect_success 'start imapd' 'start_imapd'

test_expect_success 'setup: alice holds 12 messages and 2 without Message-ID; bob and carol hold 6 + 1 of them, with other flags' '
	fprint_maildir src ii &&
	ls src/cur/* >all && test_line_count = 14 all &&
	append alice "(\\Seen)" $(cat all) &&
	grep -l "^Message-ID: <ii\.[1-6]\." $(cat all) >pre.files &&
	grep -L "^Message-ID:" $(cat all) | head -n 1 >>pre.files &&
	test_line_count = 7 pre.files &&
	append bob "(\\Flagged)" $(cat pre.files) &&
	append carol "(\\Flagged)" $(cat pre.files) &&
	imap_digest alice >alice.digest && test_line_count = 14 alice.digest
'

test_expect_success 'IMAP -> IMAP backup, no state or cache: alice sends 8 bodies (not the 6 bob holds), bob its 7 once; bob equals alice, none twice' '
	fresh &&
	msync -vv --backup --passcmd "$PASSCMD" "$(imaps_url alice)" \
	    "$(imaps_url bob)" 2>err &&
	grep "6 of 14 new message(s) matched by header fingerprint" err &&
	imapd_settle alice && imapd_settle bob &&
	test "$(imapd_sent fbc alice)" = 8 &&
	test "$(imapd_sent fbc bob)" = 7 &&
	imap_digest bob >got && test_cmp alice.digest got &&
	imapd_dups bob >d && ! test -s d
'

test_expect_success 'the next run reads no body on either side and changes nothing' '
	: >"$IMAPD_DIR/log" &&
	msync --backup --passcmd "$PASSCMD" "$(imaps_url alice)" \
	    "$(imaps_url bob)" &&
	imapd_settle alice && imapd_settle bob &&
	test "$(imapd_sent fbc alice)" = 0 && test "$(imapd_sent fbc bob)" = 0 &&
	imap_digest bob >got && test_cmp alice.digest got
'

test_expect_success 'the same without fingerprints (MSYNC_NO_FPRINT): every one of alice'\''s 14 bodies read; still none twice' '
	fresh &&
	MSYNC_NO_FPRINT=1 msync -vv --backup --passcmd "$PASSCMD" \
	    "$(imaps_url alice)" "$(imaps_url carol)" 2>err &&
	! grep "matched by header fingerprint" err &&
	imapd_settle alice && imapd_settle carol &&
	test "$(imapd_sent fbc alice)" = 14 &&
	imap_digest carol >got && test_cmp alice.digest got &&
	imapd_dups carol >d && ! test -s d
'

test_expect_success 'a destination whose cache survived a lost state: its known messages give no fingerprint (no download for it), and nothing is twice' '
	rm -rf "$XDG_STATE_HOME/msync" && : >"$IMAPD_DIR/log" &&
	msync -vv --backup --passcmd "$PASSCMD" "$(imaps_url alice)" \
	    "$(imaps_url carol)" 2>err &&
	imapd_settle alice && imapd_settle carol &&
	test "$(imapd_sent fbc carol)" = 0 &&
	imap_digest carol >got && test_cmp alice.digest got &&
	imapd_dups carol >d && ! test -s d
'

test_done
