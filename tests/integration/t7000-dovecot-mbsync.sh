#!/usr/bin/env bash
test_description='interop with real peers: Dovecot (doveadm) and mbsync on the same Maildirs'

# As root, doveadm runs as nobody, which must be able to reach the trash
# directory: lib.sh sees to that.
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-dovecot-mbox.sh"

# Everything is local: no daemon is started.  doveadm opens a Maildir
# directly (mail_location given per call with -o), and mbsync syncs two
# MaildirStores.
#
# Dovecot refuses mail access as root ("Mail access not allowed for
# root"), so when the tests run as root doveadm runs as nobody (uid
# 65534, set as mail_uid in the config) and the tree is chowned to it
# before each doveadm call (see dove).  msync, as root, can read and write
# the files either way.  Otherwise mail_uid is the caller's own uid.
#
# Written against Dovecot 2.3 (mail_location, first_valid_uid) and
# isync 1.4 (Far/Near, SubFolders Maildir++).

# dove DIR ARGS...: doveadm on the Maildir++ tree DIR.  Its stderr is
# shown and also kept in $TRASH/doveadm.err (checked at the end).
dove() {
	local dir=$1
	shift
	case $dir in /*) ;; *) dir=$PWD/$dir ;; esac
	dove_own "$dir" && dove_logged "maildir:$dir" "$@"
}

# The canonical listing used throughout: one line per message,
#	MAILBOX <tab> MD5 <tab> FLAGS
# MAILBOX in UTF-8 with "/" as separator, MD5 of the content with CRLF
# folded to LF, FLAGS the Maildir letters sorted, then the keyword names
# sorted, space separated ("-" for none).  Sorted bytewise.

# dove_digest DIR: that listing as Dovecot sees DIR (doveadm fetch).
dove_digest() {
	dove "$1" -f json fetch 'mailbox flags text' ALL >"$TRASH/dove.json" &&
	perl -MJSON::PP -MDigest::MD5=md5_hex -MEncode -e '
		use strict; use warnings;
		my %sys = ("\\Seen" => "S", "\\Answered" => "R",
		    "\\Flagged" => "F", "\\Deleted" => "T", "\\Draft" => "D");
		local $/;
		my $in = <STDIN>;
		$in = "[]" if $in !~ /\S/;
		my @out;
		for my $m (@{ JSON::PP->new->utf8->decode($in) }) {
			my (@l, @k);
			for my $f (split " ", $m->{flags}) {
				next if $f eq "\\Recent";
				if (exists $sys{$f}) { push @l, $sys{$f} }
				else { push @k, encode("UTF-8", $f) }
			}
			my $fl = join " ", grep { length } join("", sort @l), sort @k;
			(my $t = encode("UTF-8", $m->{text})) =~ s/\r\n/\n/g;
			push @out, join("\t", encode("UTF-8", $m->{mailbox}),
			    md5_hex($t), $fl eq "" ? "-" : $fl);
		}
		print "$_\n" for sort @out;
	' <"$TRASH/dove.json"
}

# dove_uids DIR: MAILBOX <tab> MD5 <tab> UID, as Dovecot numbers them.
dove_uids() {
	dove "$1" -f json fetch 'mailbox uid text' ALL >"$TRASH/dove.json" &&
	perl -MJSON::PP -MDigest::MD5=md5_hex -MEncode -e '
		local $/;
		my $in = <STDIN>;
		$in = "[]" if $in !~ /\S/;
		my @out;
		for my $m (@{ JSON::PP->new->utf8->decode($in) }) {
			(my $t = encode("UTF-8", $m->{text})) =~ s/\r\n/\n/g;
			push @out, join("\t", encode("UTF-8", $m->{mailbox}),
			    md5_hex($t), $m->{uid});
		}
		print "$_\n" for sort @out;
	' <"$TRASH/dove.json"
}

# kw_digest [--no-tuid] ROOT: the same listing read straight from the
# files of a Maildir++ tree (independent of both msync and Dovecot):
# folder names decoded from modified UTF-7, keyword letters named by each
# folder's dovecot-keywords.  With --no-tuid, the X-TUID header that
# mbsync adds to the messages it stores is left out of the MD5.
kw_digest() {
	local tuid=0
	if [ "$1" = --no-tuid ]; then tuid=1; shift; fi
	perl -MDigest::MD5=md5_hex -MEncode -MMIME::Base64 -e '
		use strict; use warnings;
		my ($root, $notuid) = @ARGV;
		sub mutf7 {
			my $s = shift;
			$s =~ s{&([^-]*)-}{
				if ($1 eq "") { "&" } else {
					(my $b = $1) =~ tr{,}{/};
					$b .= "=" x ((4 - length($b) % 4) % 4);
					encode("UTF-8", decode("UTF-16BE",
					    decode_base64($b)));
				}
			}ge;
			return $s;
		}
		my @out;
		opendir(my $rd, $root) or die "$root: $!\n";
		my @dirs = (["INBOX", $root]);
		for my $e (sort readdir $rd) {
			next if $e eq "." || $e eq "..";
			next unless $e =~ /^\.(.+)$/;
			(my $n = $1) =~ tr{.}{/};
			next unless -d "$root/$e/cur" || -d "$root/$e/new";
			push @dirs, [mutf7($n), "$root/$e"];
		}
		for my $d (@dirs) {
			my ($name, $dir) = @$d;
			my %kw;
			if (open(my $kf, "<", "$dir/dovecot-keywords")) {
				while (<$kf>) {
					chomp;
					$kw{$1} = $2 if /^(\d+) (.+)$/;
				}
			}
			for my $sub ("new", "cur") {
				opendir(my $dh, "$dir/$sub") or next;
				for my $f (readdir $dh) {
					next if $f =~ /^\./;
					open(my $fh, "<:raw", "$dir/$sub/$f") or die;
					local $/;
					my $c = <$fh> // "";
					$c =~ s/\r\n/\n/g;
					if ($notuid) {
						my $i = index($c, "\n\n");
						$i = length($c) - 1 if $i < 0;
						my $h = substr($c, 0, $i + 1);
						$h =~ s/^X-TUID: [^\n]*\n//mg;
						$c = $h . substr($c, $i + 1);
					}
					my $info = $f =~ /:2,([^:]*)$/ ? $1 : "";
					my (@l, @k);
					for my $ch (split //, $info) {
						if ($ch =~ /[a-z]/) {
							my $i = ord($ch) - ord("a");
							push @k, $kw{$i} // "?$ch";
						} else { push @l, $ch }
					}
					my $fl = join " ", grep { length }
					    join("", sort @l), sort @k;
					push @out, join("\t", $name, md5_hex($c),
					    $fl eq "" ? "-" : $fl);
				}
			}
		}
		print "$_\n" for sort @out;
	' "$1" "$tuid"
}

# cmp_mb ROOT1 ROOT2: the two trees hold the same messages and flags,
# the X-TUID header of mbsync aside.
cmp_mb() {
	kw_digest --no-tuid "$1" >"$TRASH/mb.1" &&
	kw_digest --no-tuid "$2" >"$TRASH/mb.2" &&
	diff -u --label "$1" --label "$2" "$TRASH/mb.1" "$TRASH/mb.2"
}

# msync_flags LOCATION: MAILBOX <tab> FLAGS per message, from
# `msync --list -v`, in the same canonical form.
msync_flags() {
	"$MSYNC" --list -v "$1" >"$TRASH/list.out" &&
	perl -e '
		my ($mb, @out);
		while (<STDIN>) {
			chomp;
			if (/^  \d+\t[0-9a-f]+\t(.*)\t\d+$/) {
				my @t = split " ", $1;
				my $l = "";
				$l = shift @t if @t && $t[0] =~ /^(?:[DFPRST]+|-)$/;
				$l = "" if $l eq "-";
				my $fl = join " ", grep { length }
				    join("", sort split(//, $l)), sort @t;
				push @out, "$mb\t" . ($fl eq "" ? "-" : $fl);
			} elsif (/^([^\t]+)\t\d+\t\d+$/) {
				$mb = $1;
			} else { die "unexpected --list line: $_\n" }
		}
		print "$_\n" for sort @out;
	' <"$TRASH/list.out"
}

# Digest lines without the MD5 column (for msync_flags).
no_md5() {
	cut -f1,3 "$@" | LC_ALL=C sort
}

# dovecot_files DIR: md5 of Dovecot's own files (uidlist, indexes,
# uidvalidity, maildirfolder) under DIR; dovecot-keywords is shared with
# msync and left out.
dovecot_files() {
	(cd "$1" && find . -type f \( -name "dovecot*" -o -name maildirfolder \) \
	    ! -name dovecot-keywords -print0 | LC_ALL=C sort -z |
	    xargs -0 -r md5sum)
}

# mbsync_files DIR: md5 of mbsync's own files under DIR.
mbsync_files() {
	(cd "$1" && find . -type f \( -name ".mbsyncstate*" -o -name ".uidvalidity" \
	    -o -name ".isyncuidmap*" \) -print0 | LC_ALL=C sort -z |
	    xargs -0 -r md5sum)
}

# file_names DIR: the message file names under DIR.
file_names() {
	(cd "$1" && find . -path "*/cur/*" -o -path "*/new/*" | LC_ALL=C sort)
}

# msg_file DIR N TAG: the file of gen_message N TAG in folder DIR.
msg_file() {
	local f
	for f in "$1"/cur/* "$1"/new/*; do
		[ -f "$f" ] && grep -q "^Message-ID: <$3\.$2\.msync-test@" "$f" &&
		    printf '%s\n' "$f"
	done
	return 0
}

# msgid_of N TAG: a search key for gen_message N TAG's Message-ID.
msgid_of() {
	printf '<%s.%s.msync-test@' "$2" "$1"
}

ENTW=$(printf 'Entw\303\274rfe')	# "Entwürfe" in UTF-8

# --- 1. a minimal Dovecot configuration -------------------------------

test_expect_success DOVECOT,PERL 'setup: a minimal dovecot.conf for doveadm' '
	dove_conf && dove_own dovecot/home &&
	mkdir probe && dove "$TRASH/probe" mailbox create Probe &&
	dove "$TRASH/probe" mailbox list >out &&
	printf "INBOX\nProbe\n" >expect &&
	LC_ALL=C sort out >actual && test_cmp expect actual &&
	test_path_is_dir probe/.Probe/cur
'

# --- 2. Dovecot writes, msync reads -----------------------------------

test_expect_success DOVECOT,PERL 'Dovecot writes mailboxes, messages, flags and keywords' '
	mkdir dv &&
	dove "$TRASH/dv" mailbox create Work Work/Sub "$ENTW" &&
	for i in 1 2 3 4; do gen_message $i dv >dv$i.eml || return 1; done &&
	{ gen_message 5 dv && printf "Gr\303\274\303\237e aus K\303\266ln\n"; } >dv5.eml &&
	gen_message 6 dv >dv6.eml && gen_message 7 dv >dv7.eml &&
	dove "$TRASH/dv" save -m INBOX <dv1.eml &&
	dove "$TRASH/dv" save -m INBOX <dv2.eml &&
	dove "$TRASH/dv" save -m INBOX <dv3.eml &&
	dove "$TRASH/dv" save -m Work <dv4.eml &&
	dove "$TRASH/dv" save -m Work/Sub <dv5.eml &&
	dove "$TRASH/dv" save -m "$ENTW" <dv6.eml &&
	dove "$TRASH/dv" save -m "$ENTW" <dv7.eml &&
	dove "$TRASH/dv" flags add "\\Seen \$Label1 Custom" mailbox INBOX uid 1 &&
	dove "$TRASH/dv" flags add "\\Answered \\Seen" mailbox INBOX uid 2 &&
	dove "$TRASH/dv" flags add "\\Flagged \\Draft" mailbox Work uid 1 &&
	dove "$TRASH/dv" flags add "\\Seen Important \$Label1" mailbox "$ENTW" uid 1 &&
	dove "$TRASH/dv" flags add "Custom" mailbox "$ENTW" uid 2 &&
	test_path_is_dir "dv/.Entw&APw-rfe/cur" &&
	test_path_is_dir dv/.Work.Sub/cur &&
	test_path_is_file dv/dovecot-keywords &&
	test_path_is_file "dv/.Entw&APw-rfe/dovecot-keywords" &&
	dove_digest dv >dv.digest &&
	test_line_count = 7 dv.digest &&
	grep "^INBOX	.*	S \$Label1 Custom\$" dv.digest &&
	grep "^$ENTW	.*	S \$Label1 Important\$" dv.digest
'

test_expect_success DOVECOT,PERL 'msync --list reads the Dovecot tree: flags and keyword names' '
	dovecot_files dv >dovefiles.before &&
	no_md5 dv.digest >expect &&
	msync_flags dv >actual &&
	test_cmp expect actual &&
	dovecot_files dv >dovefiles.after &&
	test_cmp dovefiles.before dovefiles.after
'

test_expect_success DOVECOT,PERL 'msync --backup copies every message, flag and keyword' '
	(cd dv && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 md5sum) >src.before &&
	"$MSYNC" --backup dv copy &&
	(cd dv && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 md5sum) >src.after &&
	test_cmp src.before src.after &&
	kw_digest copy >actual &&
	test_cmp dv.digest actual &&
	no_md5 dv.digest >expect &&
	msync_flags copy >actual &&
	test_cmp expect actual &&
	maildir_digest dv | cut -d" " -f1-3 >expect &&
	maildir_digest copy | cut -d" " -f1-3 >actual &&
	test_cmp expect actual
'

test_expect_success DOVECOT,PERL 'Dovecot reads the copy msync made' '
	dove_digest copy >actual &&
	test_cmp dv.digest actual
'

test_expect_success DOVECOT,PERL 'changes made in Dovecot follow on the next backup' '
	dove "$TRASH/dv" flags remove "\\Seen Custom" mailbox INBOX uid 1 &&
	dove "$TRASH/dv" flags add "\\Flagged NewKeyword" mailbox INBOX uid 3 &&
	dove "$TRASH/dv" flags remove "Important" mailbox "$ENTW" uid 1 &&
	dove "$TRASH/dv" expunge mailbox Work/Sub uid 1 &&
	gen_message 8 dv | dove "$TRASH/dv" save -m Work &&
	dove_digest dv >dv.digest &&
	test_line_count = 7 dv.digest &&
	"$MSYNC" --backup dv copy &&
	kw_digest copy >actual &&
	test_cmp dv.digest actual &&
	no_md5 dv.digest >expect &&
	msync_flags copy >actual &&
	test_cmp expect actual &&
	grep "^INBOX	F NewKeyword\$" actual &&
	dove_digest copy >actual &&
	test_cmp dv.digest actual
'

# --- 3. msync writes, Dovecot reads -----------------------------------

test_expect_success DOVECOT,PERL 'setup: a Maildir with folders, flags and keywords' '
	make_folder src Work && make_folder src Work/Sub &&
	make_folder src "Entw&APw-rfe" && test_path_is_dir "src/.Entw&APw-rfe" &&
	printf "0 \$Label1\n1 Important\n" >src/dovecot-keywords &&
	printf "0 Important\n1 \$Label2\n2 Custom\n" >"src/.Entw&APw-rfe/dovecot-keywords" &&
	gen_message 11 src | deliver src - S >/dev/null &&
	gen_message 12 src | deliver src - FSab >/dev/null &&
	gen_message 13 src | deliver src - >/dev/null &&
	gen_message 14 src | deliver src - Ra >/dev/null &&
	gen_message 15 src | deliver src/.Work - RS >/dev/null &&
	gen_message 16 src | deliver src/.Work - "" >/dev/null &&
	gen_message 17 src | deliver src/.Work.Sub - DS >/dev/null &&
	gen_message 18 src | deliver "src/.Entw&APw-rfe" - Sac >/dev/null &&
	gen_message 19 src | deliver "src/.Entw&APw-rfe" - b >/dev/null &&
	kw_digest src >src.digest &&
	test_line_count = 9 src.digest &&
	grep "^$ENTW	.*	S Custom Important\$" src.digest &&
	grep "^INBOX	.*	FS \$Label1 Important\$" src.digest
'

test_expect_success DOVECOT,PERL 'msync into a fresh directory; Dovecot lists the mailboxes' '
	"$MSYNC" src dv2 &&
	test_path_is_dir "dv2/.Entw&APw-rfe/cur" &&
	dove "$TRASH/dv2" mailbox list >out &&
	printf "%s\n" INBOX Work Work/Sub "$ENTW" | LC_ALL=C sort >expect &&
	LC_ALL=C sort out >actual &&
	test_cmp expect actual
'

test_expect_success DOVECOT,PERL 'Dovecot reads the messages, flags and keywords msync wrote' '
	dove_digest "$TRASH/dv2" >actual &&
	test_cmp src.digest actual &&
	dove "$TRASH/dv2" -f json fetch text mailbox "$ENTW" \
	    header Message-ID "$(msgid_of 18 src)" >out.json &&
	perl -MJSON::PP -MEncode -e "local \$/;
		print encode(q(UTF-8), JSON::PP->new->utf8->decode(<STDIN>)->[0]{text})" \
	    <out.json >actual &&
	gen_message 18 src >expect &&
	test_cmp expect actual
'

test_expect_success DOVECOT,PERL 'two-way: changes made in Dovecot reach the other Maildir' '
	dove "$TRASH/dv2" flags add "\\Flagged NewKw" mailbox INBOX header Message-ID "$(msgid_of 11 src)" &&
	dove "$TRASH/dv2" flags remove "\\Seen" mailbox Work header Message-ID "$(msgid_of 15 src)" &&
	dove "$TRASH/dv2" flags remove "Important" mailbox "$ENTW" header Message-ID "$(msgid_of 18 src)" &&
	dove "$TRASH/dv2" flags add "\$Label2" mailbox INBOX header Message-ID "$(msgid_of 13 src)" &&
	dove "$TRASH/dv2" expunge mailbox Work header Message-ID "$(msgid_of 16 src)" &&
	gen_message 20 dvn | dove "$TRASH/dv2" save -m "$ENTW" &&
	dove_digest "$TRASH/dv2" >dv2.digest &&
	dove_uids "$TRASH/dv2" >uids.before &&
	dovecot_files dv2 >dovefiles.before &&
	"$MSYNC" src dv2 &&
	dovecot_files dv2 >dovefiles.after &&
	test_cmp dovefiles.before dovefiles.after &&
	kw_digest src >actual &&
	test_cmp dv2.digest actual &&
	test_line_count = 9 actual &&
	m16=$(gen_message 16 src | md5sum | cut -d" " -f1) &&
	! grep "$m16" actual &&
	grep "^INBOX	.*	FS NewKw\$" actual &&
	grep "^INBOX	.*	\$Label2\$" actual &&
	grep "^Work	.*	R\$" actual &&
	grep "^$ENTW	.*	S Custom\$" actual &&
	dove_uids "$TRASH/dv2" >uids.after &&
	test_cmp uids.before uids.after
'

test_expect_success DOVECOT,PERL 'two-way: changes made beside msync reach Dovecot, its files intact' '
	f=$(msg_file "src" 12 src) && test -n "$f" &&
	set_flags "$f" Sa &&
	f=$(msg_file "src" 14 src) && test -n "$f" &&
	rm "$f" &&
	gen_message 21 src | deliver src/.Work.Sub - FS >/dev/null &&
	m14=$(gen_message 14 src | md5sum | cut -d" " -f1) &&
	dove_uids "$TRASH/dv2" >uids.before &&
	dovecot_files dv2 >dovefiles.before &&
	"$MSYNC" src dv2 &&
	dovecot_files dv2 >dovefiles.after &&
	test_cmp dovefiles.before dovefiles.after &&
	kw_digest src >src.digest &&
	test_line_count = 9 src.digest &&
	dove_digest "$TRASH/dv2" >actual &&
	test_cmp src.digest actual &&
	grep "^INBOX	.*	S \$Label1\$" actual &&
	grep "^Work/Sub	.*	FS\$" actual &&
	# every message Dovecot knew keeps its UID; only the expunged one
	# is gone, the new one is new
	grep -v "	$m14	" uids.before >expect &&
	dove_uids "$TRASH/dv2" >uids.after &&
	m21=$(gen_message 21 src | md5sum | cut -d" " -f1) &&
	grep -v "	$m21	" uids.after >actual &&
	test_cmp expect actual &&
	test_line_count = 1 <(grep "	$m21	" uids.after)
'

test_expect_success DOVECOT,PERL 'a second run changes nothing; Dovecot reported no error' '
	file_names dv2 >before && dovecot_files dv2 >dovefiles.before &&
	"$MSYNC" src dv2 &&
	file_names dv2 >after && dovecot_files dv2 >dovefiles.after &&
	test_cmp before after && test_cmp dovefiles.before dovefiles.after &&
	dove "$TRASH/dv2" mailbox status -t messages "*" >out &&
	test "$(cat out)" = "messages=9" &&
	! grep -i -E "error|warning|panic|fatal|corrupt" doveadm.err
'

# --- 4. mbsync on a Maildir msync maintains ---------------------------

test_expect_success MBSYNC,PERL 'setup: msync maintains near, mbsync config' '
	make_folder a Work && make_folder a "Entw&APw-rfe" &&
	for i in $(seq 1 25); do
		gen_message $((100 + i)) mb | deliver a - S >/dev/null || return 1
	done &&
	gen_message 130 mb | deliver a - >/dev/null &&
	gen_message 131 mb | deliver a/.Work - FS >/dev/null &&
	gen_message 132 mb | deliver a/.Work - R >/dev/null &&
	gen_message 133 mb | deliver "a/.Entw&APw-rfe" - D >/dev/null &&
	"$MSYNC" a near && test_cmp_trees a near &&
	cat >mbsyncrc <<-EOF
	MaildirStore near
	Inbox $TRASH/near/
	SubFolders Maildir++

	MaildirStore far
	Inbox $TRASH/far/
	SubFolders Maildir++

	Channel ch
	Far :far:
	Near :near:
	Patterns *
	Sync All
	Create Both
	Expunge Both
	SyncState *
	EOF
'

test_expect_success MBSYNC,PERL 'mbsync copies the msync-maintained Maildir' '
	mbsync -c mbsyncrc -a &&
	cmp_mb near far &&
	test "$(count_all far)" = 29 &&
	test_path_is_file near/.mbsyncstate &&
	test_path_is_file near/.uidvalidity &&
	test_path_is_file near/.Work/.mbsyncstate
'

test_expect_success MBSYNC,PERL 'msync after mbsync renamed the files: nothing lost or duplicated' '
	mbsync_files near >mbfiles.before &&
	"$MSYNC" a near &&
	mbsync_files near >mbfiles.after &&
	test_cmp mbfiles.before mbfiles.after &&
	test "$(count_all a)" = 29 && test "$(count_all near)" = 29 &&
	test_cmp_trees a near && cmp_mb near far &&
	file_names a >before &&
	"$MSYNC" a near && file_names a >after && test_cmp before after
'

# mbsync renames every file it sees on near to add ",U=n" to the base
# name.  A file renamed within its folder keeps its UID (same content),
# so nothing is replayed on A: no file there is rewritten (which would
# give it new Dovecot UIDs and make IMAP clients fetch everything again).
test_expect_success MBSYNC,PERL 'a rename by mbsync does not rewrite the files on the other side' '
	make_maildir a2 && deliver a2 "" S >/dev/null && deliver a2 "" >/dev/null &&
	"$MSYNC" a2 near2 &&
	sed "s|$TRASH/near/|$TRASH/near2/|; s|$TRASH/far/|$TRASH/far2/|" mbsyncrc >mbsyncrc2 &&
	mbsync -c mbsyncrc2 -a &&
	file_names a2 >before &&
	"$MSYNC" a2 near2 &&
	test_cmp_trees a2 near2 &&
	file_names a2 >after &&
	test_cmp before after
'

test_expect_success MBSYNC,PERL 'changes on the far side reach A through mbsync and msync' '
	gen_message 140 mb | deliver far/.Work - S >/dev/null &&
	f=$(msg_file "far" 101 mb) && test -n "$f" && set_flags "$f" FS &&
	f=$(msg_file "far" 102 mb) && test -n "$f" && rm "$f" &&
	f=$(msg_file "far/.Entw&APw-rfe" 133 mb) && test -n "$f" && set_flags "$f" DS &&
	mbsync -c mbsyncrc -a &&
	cmp_mb near far &&
	mbsync_files near >mbfiles.before &&
	"$MSYNC" a near &&
	mbsync_files near >mbfiles.after &&
	test_cmp mbfiles.before mbfiles.after &&
	test_cmp_trees a near &&
	test "$(count_all a)" = 29 &&
	m102=$(gen_message 102 mb | md5sum | cut -d" " -f1) &&
	m101=$(gen_message 101 mb | md5sum | cut -d" " -f1) &&
	m140=$(gen_message 140 mb | md5sum | cut -d" " -f1) &&
	kw_digest --no-tuid a >digest &&
	! grep "$m102" digest &&
	grep "^INBOX	$m101	FS\$" digest &&
	grep "^Work	$m140	S\$" digest &&
	grep "^$ENTW	.*	DS\$" digest
'

test_expect_success MBSYNC,PERL 'changes on A reach far through msync and mbsync' '
	gen_message 150 mb | deliver a - R >/dev/null &&
	make_folder a Archive &&
	gen_message 151 mb | deliver a/.Archive - S >/dev/null &&
	f=$(msg_file "a" 103 mb) && test -n "$f" && set_flags "$f" RS &&
	f=$(msg_file "a/.Work" 131 mb) && test -n "$f" && rm "$f" &&
	mbsync_files near >mbfiles.before &&
	"$MSYNC" a near &&
	mbsync_files near >mbfiles.after &&
	test_cmp mbfiles.before mbfiles.after &&
	test_cmp_trees a near &&
	mbsync -c mbsyncrc -a &&
	cmp_mb near far &&
	test "$(count_all far)" = 30 &&
	test_path_is_dir far/.Archive/cur
'

test_expect_success MBSYNC,PERL 'msync and mbsync once more: all three equal, nothing moves' '
	"$MSYNC" a near && mbsync -c mbsyncrc -a &&
	mbsync_files near >mbfiles.before &&
	"$MSYNC" a near &&
	mbsync_files near >mbfiles.after &&
	test_cmp mbfiles.before mbfiles.after &&
	test_cmp_trees a near && cmp_mb near far &&
	test "$(count_all a)" = 30 &&
	file_names a >a.before && file_names near >near.before &&
	file_names far >far.before &&
	mbsync -c mbsyncrc -a && "$MSYNC" a near &&
	file_names a >a.after && file_names near >near.after &&
	file_names far >far.after &&
	test_cmp a.before a.after && test_cmp near.before near.after &&
	test_cmp far.before far.after
'

test_done
