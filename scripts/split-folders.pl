#!/usr/bin/perl
# split-folders.pl -- spread a Maildir++ store over many folders, for
# memory measurements at the shape of issue 10 (200,000 messages in
# 2,000 folders of 100).
#
#   perl scripts/split-folders.pl DIR N
#
# Moves every message of the Maildir++ DIR into N folders, INBOX and
# .F0001 ... .F<N-1>, round robin over the sorted names, and removes the
# folders that are left empty.  Used by t1450 and scripts/bench-mem.sh.
use strict; use warnings;
die "usage: split-folders.pl DIR N\n" unless @ARGV == 2 && $ARGV[1] =~ /^[1-9][0-9]*$/;
my ($src, $n) = @ARGV;
$src .= "/" unless $src =~ m{/$};
opendir(my $d, $src) or die "$src: $!";
my @dirs = ("", grep { /^\.[^.]/ && -d "$src/$_/cur" } readdir $d);
closedir $d;
my @files;
for my $f (@dirs) {
	for my $s ("cur", "new") {
		opendir(my $h, "$src$f/$s") or next;
		push @files, map { [$f, $s, $_] } grep { !/^\./ } readdir $h;
		closedir $h;
	}
}
@files = sort { "$a->[0]/$a->[1]/$a->[2]" cmp "$b->[0]/$b->[1]/$b->[2]" } @files;
for my $i (1 .. $n - 1) {
	my $fd = sprintf("%s.F%04d", $src, $i);
	mkdir $fd or die "$fd: $!";
	mkdir "$fd/$_" or die "$fd/$_: $!" for ("cur", "new", "tmp");
}
my $k = 0;
for my $e (@files) {
	my ($f, $s, $name) = @$e;
	my $i = $k++ % $n;
	my $to = $i == 0 ? "$src$s/$name" :
	    sprintf("%s.F%04d/%s/%s", $src, $i, $s, $name);
	rename("$src$f/$s/$name", $to) or die "$f/$s/$name: $!";
}
for my $f (@dirs) {
	next if $f eq "";
	rmdir "$src$f/$_" for ("cur", "new", "tmp");
	rmdir "$src$f" or die "$src$f: $!";
}
