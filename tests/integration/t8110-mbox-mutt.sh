#!/usr/bin/env bash
test_description='mbox interop with mutt: mutt reads the mbox files msync writes (the same messages and flags), msync reads the mbox files mutt writes (byte for byte), and a two-way run picks up what mutt changed in an mbox msync wrote'
. "$(dirname "$0")/lib.sh"

test_require_prereq PERL

test_lazy_prereq MUTT '
	command -v mutt >/dev/null && command -v script >/dev/null
'
if [ "${MSYNC_TEST_MUTT:-}" = true ]; then
	test_have_prereq MUTT || { echo "mutt is required (MSYNC_TEST_MUTT=true)" >&2; exit 1; }
fi

# mutt_run RC FOLDER KEYS: mutt on FOLDER with only the settings in RC
# (no system or user muttrc), typing KEYS (a push string), under a
# pseudo-terminal (mutt is a full-screen program).  Bounded by timeout
# only so that a mutt waiting for an unexpected prompt cannot hang the
# suite; the test checks what mutt wrote, not how long it took.
# script's input is a FIFO held open here, never at its end: an input
# at its end (/dev/null) makes script send mutt an end-of-file, which
# can cut into the keys pushed.
mutt_run() {
	local rc
	{ cat "$1" && printf 'push "%s"\n' "$3"; } >"$TRASH/muttrc.run" &&
	rm -f "$TRASH/mutt.in" && mkfifo "$TRASH/mutt.in" &&
	exec 8<>"$TRASH/mutt.in" &&
	TERM=xterm HOME=$TRASH/mutthome timeout 60 \
	    script -qec "mutt -n -F '$TRASH/muttrc.run' -f '$2'" /dev/null \
	    <"$TRASH/mutt.in" >>"$TRASH/mutt.log" 2>&1
	rc=$?
	exec 8>&-
	return $rc
}

# digest [--mutt] MAILDIR: per message, sorted by Message-ID: its flags
# and the MD5 of its content.  --mutt undoes what mutt does to a
# message it copies out of an mbox: the Content-Length and Lines headers
# it adds, and the mboxrd quoting it leaves in place (mutt reads mboxo:
# a body line ">From " stays as it is), one ">" off each ">+From " line.
digest() {
	perl -MDigest::MD5 -e '
		my $mutt = $ARGV[0] eq "--mutt" ? shift : 0;
		my @out;
		for my $f (glob("$ARGV[0]/cur/* $ARGV[0]/new/*")) {
			open(my $h, "<:raw", $f) or die "$f: $!";
			local $/; my $c = <$h>;
			my ($head, $body) = split(/\n\n/, $c, 2);
			$body //= "";
			if ($mutt) {
				$head = join("", map { "$_\n" } grep {
				    !/^(Content-Length|Lines):/i }
				    split(/\n/, $head));
				$head =~ s/\n$//;
				$body =~ s/^>(>*From )/$1/mg;
			}
			$c = defined($body) && $c =~ /\n\n/ ?
			    "$head\n\n$body" : $head;
			my ($id) = $c =~ /^Message-ID:\s*(\S+)/mi;
			my ($fl) = $f =~ /:2,([A-Z]*)$/;
			$fl //= "";
			$fl =~ s/[^DFRST]//g;
			push @out, sprintf("%s %s %s\n", $id // "-", $fl,
			    Digest::MD5::md5_hex($c));
		}
		print sort @out;
	' -- "$@"
}

test_expect_success MUTT 'setup: a Maildir with From, >From and >>From body lines and every flag' '
	mkdir -p mutthome/Mail &&
	make_maildir md &&
	for i in $(seq 1 12); do deliver md "" S >/dev/null || return 1; done &&
	deliver md "" FS >/dev/null && deliver md "" RS >/dev/null &&
	deliver md "" >/dev/null &&
	{ gen_message 90 quote && printf ">From one quote\n>>From two quotes\nFrom none\n"; } |
	    deliver md - S >/dev/null &&
	test "$(count_msgs md)" = 16 &&
	cat >rc.read <<-EOF &&
	set mbox_type=Maildir
	set confirmcreate=no
	set confirmappend=no
	set quit=yes
	set delete=no
	set move=no
	set mark_old=no
	set sort=mailbox-order
	EOF
	sed "s/^set mbox_type=.*/set mbox_type=mbox/" rc.read >rc.write &&
	digest md >expected && test_line_count = 16 expected
'

test_expect_success MUTT 'mutt reads the mbox msync wrote: every message, its flags, its content' '
	"$MSYNC" --backup md mbox:out.mbox &&
	mutt_run rc.read "$TRASH/out.mbox" "T~A\\n;C$TRASH/mutt-md\\nq" &&
	test "$(count_msgs mutt-md)" = 16 &&
	digest --mutt mutt-md >got && test_cmp expected got
'

test_expect_success MUTT 'msync reads the mbox mutt wrote (mutt: Content-Length, unquoted bodies): byte for byte, with the flags' '
	mutt_run rc.write "$TRASH/md" "T~A\\n;C$TRASH/mutt.mbox\\nq" &&
	grep -c "^From " mutt.mbox >n && test "$(cat n)" -ge 16 &&
	grep "^Content-Length: " mutt.mbox &&
	"$MSYNC" --backup mbox:mutt.mbox back &&
	digest back >got && test_cmp expected got
'

test_expect_success MUTT 'two-way: what mutt changes in an mbox msync wrote (a flag set, a message deleted) reaches the Maildir' '
	rm -rf tw twm && cp -r md tw && rm -f tw/msync.index &&
	"$MSYNC" tw mbox:twm &&
	# Which messages come first in the mbox follows the Maildir names,
	# whose pid part (deliver) sorts differently from run to run: read
	# the first two from the file, and the flags of the first with F
	# toggled (what F in mutt makes of them).
	awk "/^From /{n++} n==1 && /^Subject: /{print; exit}" twm/INBOX >s1 &&
	awk "/^From /{n++} n==2 && /^Subject: /{print; exit}" twm/INBOX >s2 &&
	test -s s1 && test -s s2 && ! test_cmp s1 s2 >/dev/null &&
	f0=$(grep -lxF -f s1 tw/cur/* tw/new/* 2>/dev/null) &&
	case $f0 in *:2,*) f0=${f0##*:2,} ;; *) f0= ;; esac &&
	case $f0 in
	*F*) want=$(printf %s "$f0" | tr -d F) ;;
	*) want=$(printf "F%s" "$f0" | fold -w1 | sort | tr -d "\n") ;;
	esac &&
	sed "s/^set delete=.*/set delete=yes/" rc.write >rc.tw &&
	# mutt: flag the first message, delete the second, write the
	# folder (sync-mailbox, purging), quit.  (No $ in a push string:
	# mutt expands it as a variable.)
	mutt_run rc.tw "$TRASH/twm/INBOX" \
	    "<first-entry>F<next-entry>d<sync-mailbox>q" &&
	test "$(grep -c "^From " twm/INBOX)" = 15 &&
	"$MSYNC" tw mbox:twm 2>err &&
	test "$(count_msgs tw)" = 15 &&
	"$MSYNC" --backup mbox:twm twback &&
	digest tw >a.d && digest twback >b.d && test_cmp a.d b.d &&
	m1=$(grep -lxF -f s1 tw/cur/*) && test -n "$m1" &&
	case $m1 in *:2,"$want") ;; *) echo "$m1: want $want"; false ;; esac &&
	! grep -lxF -f s2 tw/cur/* tw/new/*
'

test_done
