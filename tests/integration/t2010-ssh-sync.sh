#!/usr/bin/env bash
test_description='sync over a real sshd: two-way, backup push and pull,
one-way and --list with OpenSSH and libssh, compressed and not, on real
mail; --stats, --bwlimit, and paths full of shell metacharacters'
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-sshd.sh"

test_require_prereq PERL SSHD

# The SpamAssassin corpus when scripts/mkcorpus.sh has it cached (never
# downloaded here); else generated messages in the same folders.
test_lazy_prereq CORPUS_CACHED '
	test -n "$(ls -d "$MSYNC_CORPUS_CACHE"/*/package/data 2>/dev/null)"
'

# The transports and compression settings every case runs with.
COMBOS="ssh-z ssh-nz libssh-z libssh-nz"

# set_combo NAME: X becomes the transport and compression options.
set_combo() {
	case $1 in
	ssh-z) X=(-e "$SSH_CMD" -z) ;;
	ssh-nz) X=(-e "$SSH_CMD" --no-compress) ;;
	libssh-z) X=(--ssh=libssh -z) ;;
	libssh-nz) X=(--ssh=libssh --no-compress) ;;
	*) echo "set_combo: unknown $1" >&2; return 1 ;;
	esac
}

# nth_msg DIR N: the Nth message file (sorted by name) of DIR/cur.
nth_msg() {
	local f
	f=$(ls "$1/cur" | LC_ALL=C sort | sed -n "${2}p")
	[ -n "$f" ] || { echo "nth_msg: no message $2 in $1/cur" >&2; return 1; }
	printf '%s/cur/%s\n' "$1" "$f"
}

# gen_big N: a message of about 100 KB that does not compress well (random
# base64), for the --bwlimit and transfer tests.
gen_big() {
	gen_message "$1" big | sed '/^$/q' &&
	head -c 75000 /dev/urandom | base64 -w 76
}

# mk_base DIR: the corpus (300 messages in INBOX, Lists, Lists/Newsletters,
# Junk, Junk/Old), or a generated stand-in with the same folders.
mk_base() {
	local dir=$1 i f
	if test_have_prereq CORPUS_CACHED; then
		echo "mk_base: SpamAssassin corpus from $MSYNC_CORPUS_CACHE"
		make_corpus --no-mbox "$dir.tmp" 300 &&
		mv "$dir.tmp/maildir" "$dir" && rmdir "$dir.tmp"
		return
	fi
	echo "mk_base: no cached corpus; generated messages"
	for f in Lists Lists/Newsletters Junk Junk/Old; do
		make_folder "$dir" "$f" || return 1
	done
	{
		for i in $(seq 1 60); do deliver "$dir" "" S || return 1; done
		for i in $(seq 1 5); do deliver "$dir" || return 1; done
		for i in $(seq 1 20); do
			deliver "$(folder_path "$dir" Lists)" "" RS || return 1
		done
		for i in $(seq 1 8); do
			deliver "$(folder_path "$dir" Lists/Newsletters)" "" F ||
				return 1
		done
		for i in $(seq 1 10); do
			deliver "$(folder_path "$dir" Junk)" "" || return 1
			deliver "$(folder_path "$dir" Junk/Old)" "" T || return 1
		done
	} >/dev/null
}

# wire_bytes FILE: "SENT RAW" from the --stats wire line in FILE.
wire_bytes() {
	sed -n 's/^msync: wire: sent \([0-9]*\) bytes (\([0-9]*\) before compression).*/\1 \2/p' "$1"
}

# list_digest FILE: msync --list -v output as guid_digest lines, sorted
# (the GUID left out, "-", when there is no xxh128sum).
list_digest() {
	awk -F '\t' -v xxh="$(command -v xxh128sum >/dev/null && echo 1)" '
		/^  / { print mb "  " (xxh ? $2 : "-") "  " $3 "  " $4; next }
		{ mb = $1 }
	' "$1" | LC_ALL=C sort
}

# list_summary DIGEST: "mailbox<TAB>count" for each mailbox of a
# maildir_digest --names listing.
list_summary() {
	awk '{ n[$1]++ } END { for (m in n) printf "%s\t%d\n", m, n[m] }' "$1" |
	    LC_ALL=C sort
}

# snapshot DIR: every path under DIR with its type, inode, size, mtime
# and content hash, to show that a tree was not touched at all.
snapshot() {
	perl -MDigest::MD5 -MTime::HiRes=lstat -e '
		use strict; use warnings;
		my @out;
		sub walk {
			my ($p) = @_;
			my @st = lstat($p) or die "$p: $!\n";
			my $line = sprintf "%s %o %d %d %.9f", $p, $st[2], $st[1],
			    $st[7], $st[9];
			if (-f _) {
				open(my $fh, "<:raw", $p) or die "$p: $!\n";
				$line .= " " . Digest::MD5->new->addfile($fh)->hexdigest;
			}
			push @out, $line;
			return unless -d _;
			opendir(my $dh, $p) or die "$p: $!\n";
			for my $e (sort readdir $dh) {
				next if $e eq "." || $e eq "..";
				walk("$p/$e");
			}
		}
		walk($ARGV[0]);
		print "$_\n" for @out;
	' "$1"
}

# guid_digest ROOT: what msync --list -v should show for ROOT, one line
# per message, "mailbox  guid  flags  size", sorted; the GUID (XXH3-128
# of the content, see src/guid.h) through xxh128sum when there is one,
# else "-".  The test messages have LF line ends (checked), so the file's
# hash is the GUID.
guid_digest() {
	perl -e '
		use strict; use warnings;
		my ($root, $xxh) = @ARGV;
		my (%info, @files, @out);
		sub walk {
			my ($dir, $rel) = @_;
			for my $sub ("new", "cur") {
				opendir(my $dh, "$dir/$sub") or next;
				for my $f (sort readdir $dh) {
					next if $f =~ /^\./;
					my $p = "$dir/$sub/$f";
					next unless -f $p;
					open(my $fh, "<:raw", $p) or die "$p: $!\n";
					local $/;
					my $c = <$fh> // "";
					die "$p: has a CR\n" if $c =~ /\r/;
					my $fl = $f =~ /:2,([^:]*)$/ ? $1 : "";
					$fl = join "", sort split //, $fl;
					$fl = "-" if $fl eq "";
					my $mb = $rel eq "." ? "INBOX" : $rel;
					$mb =~ s{^\.}{} and $mb =~ tr{.}{/};
					$info{$p} = [$mb, $fl, length $c];
					push @files, $p;
				}
			}
			opendir(my $dh, $dir) or die "$dir: $!\n";
			for my $e (sort readdir $dh) {
				next unless $e =~ /^\.[^.]/ && -d "$dir/$e";
				walk("$dir/$e", $e);
			}
		}
		walk($root, ".");
		my %guid;
		if ($xxh && @files) {
			open(my $h, "-|", "xxh128sum", @files) or die "xxh128sum: $!\n";
			while (<$h>) {
				chomp;
				/^([0-9a-f]{32})  (.*)$/ or die "xxh128sum: $_\n";
				$guid{$2} = $1;
			}
			close $h or die "xxh128sum failed\n";
		}
		for my $p (@files) {
			my ($mb, $fl, $size) = @{$info{$p}};
			push @out, join "  ", $mb, $guid{$p} // "-", $fl, $size;
		}
		print "$_\n" for sort @out;
	' "$1" "$(command -v xxh128sum >/dev/null && echo 1)"
}

test_expect_success 'start sshd' '
	start_sshd
'

test_expect_success 'setup: a real-mail Maildir' '
	mk_base base &&
	maildir_digest --names base >base.digest &&
	test_line_count -ge 100 base.digest &&
	test "$(list_summary base.digest | wc -l)" = 5
'

for combo in $COMBOS; do
	set_combo "$combo" || exit 1
	L=$TRASH/L-$combo
	R=$TRASH/R-$combo

	test_expect_success "$combo: first two-way sync copies everything, --stats" '
		cp -a base "$L" &&
		"$MSYNC" "${X[@]}" --stats "$L" msynctest:"$R" 2>stats &&
		cat stats &&
		test_cmp_trees "$L" "$R" &&
		maildir_digest --names "$R" >got && test_cmp base.digest got &&
		wire_bytes stats >wire && test_line_count = 1 wire &&
		read -r sent raw <wire &&
		test "$sent" -gt 0 && test "$raw" -gt 0 &&
		case $combo in
		# Uncompressed, the wire carries the records as they are;
		# only the final BYE (a 5-byte record) may be missing from
		# "sent" when the peer has hung up before it was written.
		*-nz)	grep "^msync: wire: .*, uncompressed\$" stats &&
			test "$sent" -le "$raw" && test $((raw - sent)) -le 5 ;;
		*)	! grep "uncompressed" stats &&
			test $((sent * 10)) -lt $((raw * 9)) ;;
		esac
	'

	test_expect_success "$combo: two-way sync with changes on both sides" '
		# Local: new mail, a flag change, an expunge in INBOX, and
		# Lists (with Lists/Newsletters) renamed to Archive.
		deliver "$L" >/dev/null &&
		set_flags "$(nth_msg "$L" 1)" FRS &&
		rm "$(nth_msg "$L" 2)" &&
		mv "$L/.Lists" "$L/.Archive" &&
		mv "$L/.Lists.Newsletters" "$L/.Archive.Newsletters" &&
		# Remote: new mail in INBOX and Junk, a flag change and an
		# expunge in Junk.
		maildir_digest --names "$R" >r0 &&
		deliver "$R" "" S >/dev/null &&
		deliver "$(folder_path "$R" Junk)" >/dev/null &&
		set_flags "$(nth_msg "$(folder_path "$R" Junk)" 1)" ST &&
		rm "$(nth_msg "$(folder_path "$R" Junk)" 2)" &&
		maildir_digest --names "$L" >dl &&
		maildir_digest --names "$R" >dr &&
		{
			grep -v "^Junk  " dl &&
			grep "^Junk  " dr &&
			grep "^INBOX  " dr | LC_ALL=C comm -13 r0 -
		} | LC_ALL=C sort >expect &&
		"$MSYNC" "${X[@]}" "$L" msynctest:"$R" 2>err &&
		maildir_digest --names "$L" >got.l &&
		maildir_digest --names "$R" >got.r &&
		test_cmp expect got.l &&
		test_cmp expect got.r &&
		test_path_is_missing "$R/.Lists" &&
		test_path_is_dir "$R/.Archive.Newsletters" &&
		"$MSYNC" "${X[@]}" --stats "$L" msynctest:"$R" 2>stats &&
		grep "changes on A: 0 copied" stats &&
		grep "changes on B: 0 copied (0 bytes), 0 moved/local, 0 flag changes, 0 expunged" stats
	'

	test_expect_success "$combo: backup push" '
		"$MSYNC" "${X[@]}" --backup "$L" msynctest:"$TRASH/push-$combo" &&
		test_cmp_trees "$L" "push-$combo" &&
		snapshot "$L" >before &&
		deliver "push-$combo" "" S >/dev/null &&
		set_flags "$(nth_msg "push-$combo" 3)" D &&
		"$MSYNC" "${X[@]}" --backup "$L" msynctest:"$TRASH/push-$combo" &&
		test_cmp_trees "$L" "push-$combo" &&
		snapshot "$L" >after &&
		test_cmp before after
	'

	test_expect_success "$combo: backup pull (ssh:// form)" '
		snapshot "$R" >before &&
		"$MSYNC" "${X[@]}" --backup "ssh://msynctest$R" "pull-$combo" &&
		test_cmp_trees "$R" "pull-$combo" &&
		snapshot "$R" >after && test_cmp before after &&
		deliver "$(folder_path "$R" Archive/Newsletters)" "" F >/dev/null &&
		rm "$(nth_msg "$R" 4)" &&
		rm "$(nth_msg "pull-$combo/.Junk.Old" 1)" &&
		"$MSYNC" "${X[@]}" --backup "ssh://msynctest$R" "pull-$combo" &&
		test_cmp_trees "$R" "pull-$combo"
	'

	test_expect_success "$combo: --list of the remote, message by message" '
		"$MSYNC" "${X[@]}" --list msynctest:"$R" >list 2>err &&
		maildir_digest --names "$R" >dr &&
		list_summary dr >expect &&
		grep -v "^  " list | cut -f1,2 | LC_ALL=C sort >got &&
		test_cmp expect got &&
		"$MSYNC" "${X[@]}" --list -v msynctest:"$R" >list 2>err &&
		guid_digest "$R" >expect &&
		test_line_count = "$(wc -l <dr)" expect &&
		list_digest list >got &&
		test_cmp expect got
	'

	# One-way into the remote for the OpenSSH runs, out of it for libssh.
	case $combo in
	ssh-*) OW_SRC=$L OW_DST=$TRASH/ow-$combo
		OW_SRC_LOC=$OW_SRC OW_DST_LOC=msynctest:$OW_DST ;;
	*) OW_SRC=$R OW_DST=$TRASH/ow-$combo
		OW_SRC_LOC=msynctest:$OW_SRC OW_DST_LOC=$OW_DST ;;
	esac

	test_expect_success "$combo: one-way run ($OW_SRC_LOC -> $OW_DST_LOC)" '
		deliver "$OW_DST" "" S >/dev/null &&
		deliver "$OW_DST" >/dev/null &&
		maildir_digest --names "$OW_DST" >extra &&
		"$MSYNC" "${X[@]}" --one-way "$OW_SRC_LOC" "$OW_DST_LOC" &&
		maildir_digest --names "$OW_SRC" >ds &&
		LC_ALL=C sort ds extra >expect &&
		maildir_digest --names "$OW_DST" >got &&
		test_cmp expect got &&
		# SRC: new mail, a flag change, an expunge.  DST keeps what
		# SRC expunged, and its own extra mail.
		gone=$(nth_msg "$OW_SRC" 5) &&
		gone_line=$(grep "^INBOX  $(md5sum <"$gone" | cut -c1-32)  " ds) &&
		rm "$gone" &&
		set_flags "$(nth_msg "$OW_SRC" 6)" FS &&
		deliver "$(folder_path "$OW_SRC" Junk/Old)" >/dev/null &&
		snapshot "$OW_SRC" >before &&
		"$MSYNC" "${X[@]}" --one-way "$OW_SRC_LOC" "$OW_DST_LOC" &&
		snapshot "$OW_SRC" >after && test_cmp before after &&
		maildir_digest --names "$OW_SRC" >ds &&
		{ cat ds extra && echo "$gone_line"; } | LC_ALL=C sort >expect &&
		maildir_digest --names "$OW_DST" >got &&
		test_cmp expect got
	'
done

# --- paths with spaces and shell metacharacters ----------------------

# A directory name with every character a shell would act on.
META='sp ace '\''q "dq $HOME ;semi &amp *star \back'

# put_msg DIR [FLAGS]: a new message in DIR/cur.  (deliver checks for a
# free name with a glob, which META's characters break.)
put_msg() {
	local n
	n=$(test_next_msgno_) &&
	make_maildir "$1" &&
	gen_message "$n" meta >"$1/tmp/m$n" &&
	mv "$1/tmp/m$n" "$1/cur/1700000000.M${n}P1.meta:2,${2:-}"
}

# The names of everything under $TRASH but the daemon's and the homes'
# files, the two metacharacter trees (checked on their own) and meta-tmp
# (the tests' own files).
others() {
	(cd "$TRASH" && find . \( -path ./sshd -o -path ./home \
	    -o -path ./remote-home -o -path ./meta-l -o -path ./meta-r \
	    -o -path ./meta-tmp \) -prune -o -print | LC_ALL=C sort)
}

test_expect_success 'setup: stores under metacharacter paths' '
	mkdir meta-l meta-r meta-tmp &&
	make_folder "meta-l/$META" "Sub" &&
	for i in 1 2 3 4 5; do put_msg "meta-l/$META" S || break; done &&
	put_msg "$(folder_path "meta-l/$META" Sub)" &&
	test "$(count_all "meta-l/$META")" = 6 &&
	others >meta-tmp/others.before
'

for t in ssh libssh; do
	case $t in
	ssh) X=(-e "$SSH_CMD") ;;
	libssh) X=(--ssh=libssh) ;;
	esac
	test_expect_success "$t: two-way sync between metacharacter paths" '
		ml="meta-l/$META $t" mr="$TRASH/meta-r/$META $t" &&
		cp -a "meta-l/$META" "$ml" &&
		"$MSYNC" "${X[@]}" "$ml" "msynctest:$mr" &&
		test_cmp_trees "$ml" "$mr" &&
		put_msg "$ml" F &&
		put_msg "$(folder_path "$mr" Sub)" S &&
		rm "$(nth_msg "$mr" 1)" &&
		set_flags "$(nth_msg "$ml" 2)" RS &&
		"$MSYNC" "${X[@]}" "$ml" "msynctest:$mr" &&
		test_cmp_trees "$ml" "$mr" &&
		test "$(count_all "$mr")" = 7 &&
		maildir_digest "$mr" >meta-tmp/got &&
		grep -c "  RS\$" meta-tmp/got &&
		others >meta-tmp/others.after &&
		test_cmp meta-tmp/others.before meta-tmp/others.after
	'

	test_expect_success "$t: backup push and pull, metacharacter paths (ssh:// form)" '
		"$MSYNC" "${X[@]}" --backup "meta-l/$META" \
		    "ssh://msynctest$TRASH/meta-r/$META push $t" &&
		test_cmp_trees "meta-l/$META" "meta-r/$META push $t" &&
		"$MSYNC" "${X[@]}" --backup "msynctest:$TRASH/meta-r/$META push $t" \
		    "meta-l/$META pull $t" &&
		test_cmp_trees "meta-l/$META" "meta-l/$META pull $t" &&
		others >meta-tmp/others.after &&
		test_cmp meta-tmp/others.before meta-tmp/others.after
	'
done

test_expect_success 'nothing but the metacharacter stores was made' '
	printf "%s\n" "$META" "$META ssh" "$META libssh" "$META pull ssh" \
	    "$META pull libssh" | LC_ALL=C sort >meta-tmp/expect &&
	(cd meta-l && ls -A | LC_ALL=C sort) >meta-tmp/got &&
	test_cmp meta-tmp/expect meta-tmp/got &&
	printf "%s\n" "$META ssh" "$META libssh" "$META push ssh" \
	    "$META push libssh" | LC_ALL=C sort >meta-tmp/expect &&
	(cd meta-r && ls -A | LC_ALL=C sort) >meta-tmp/got &&
	test_cmp meta-tmp/expect meta-tmp/got &&
	others >meta-tmp/others.after &&
	test_cmp meta-tmp/others.before meta-tmp/others.after &&
	# A split path would have landed in the remote login directory.
	rhome=$(getent passwd "$(id -un)" | cut -d: -f6) &&
	for w in sp ace "'"'"'q" "\"dq" semi "&amp" "*star" "\\back"; do
		test_path_is_missing "$rhome/$w" || rhome=
	done &&
	test -n "$rhome"
'

# --- --bwlimit ---------------------------------------------------------

test_expect_success 'setup: about 1 MB of poorly compressible mail' '
	make_maildir big &&
	for i in 1 2 3 4 5 6 7 8 9 10; do
		gen_big "$i" >"big/tmp/$i" &&
		mv "big/tmp/$i" "big/cur/1700000000.M${i}P1.big:2,S" || break
	done &&
	test "$(count_msgs big)" = 10 &&
	test "$(du -sk big | cut -f1)" -ge 1000
'

test_expect_success '--bwlimit 200K push over ssh, uncompressed, is correct' '
	"$MSYNC" -e "$SSH_CMD" --no-compress --bwlimit 200K --stats --backup big \
	    msynctest:"$TRASH/big-push" 2>stats &&
	cat stats &&
	test_cmp_trees big big-push &&
	set -- $(wire_bytes stats) &&
	test "$1" -ge 900000
'

test_expect_success '--bwlimit 200K pull over libssh, uncompressed, is correct' '
	"$MSYNC" --ssh=libssh --no-compress --bwlimit 200K --stats --backup \
	    msynctest:"$TRASH/big" big-pull 2>stats &&
	cat stats &&
	test_cmp_trees big big-pull &&
	grep "^msync: wire: .* received [0-9]\{6,\} bytes" stats
'

test_done
