#!/usr/bin/perl
# bench-changes.pl -- the benchmark's deterministic change set, for
# scripts/bench.sh.
#
#   perl scripts/bench-changes.pl gen CORPUS SEED PERCENT > CHANGES
#   perl scripts/bench-changes.pl apply CHANGES CORPUS TARGET
#   perl scripts/bench-changes.pl stat DIR
#
# gen lists the messages of the Maildir CORPUS (every file in a cur/ or
# new/ directory, in any folder layout), sorts them, shuffles them with
# perl's generator seeded with SEED, and picks PERCENT % of the messages
# (at least one) three times, without overlap:
#   F folder key letter     toggle a flag (F or S, alternately) by renaming
#   E folder key            expunge (unlink)
#   N folder template name  deliver a new message: the template's content
#                           with an extra first header line, as new/name
# A message is named by its folder and its key: the file name up to the
# ":2," info, without an mbsync ",U=n" part, so the same change set can be
# applied to copies that a tool has renamed (mbsync adds ,U=; Dovecot
# moves new/ to cur/).
#
# apply makes those changes in TARGET, a copy of CORPUS that a tool may
# have synced already; templates are read from CORPUS.  It prints how
# many changes of each kind it made.
#
# untrash DIR clears the T (trashed) flag of every message in DIR
# (mbsync expunges such messages on its first run; the other tools copy
# them, so bench.sh clears it in its corpus).
#
# newmail CHANGES CORPUS prints "bytes lz4 new flags expunges": the bytes
# of the new messages apply would deliver, their size through `lz4 -1`
# as one stream ("-" without the lz4 command), and how many changes of
# each kind CHANGES holds: what a 1% run must at least send over ssh.
#
# stat prints "messages seen flagged" for DIR: the number of message
# files and how many carry the S and F flags, which bench.sh compares
# between a source and a destination to check that a tool did the work.
use strict;
use warnings;
use File::Find;

my $cmd = shift @ARGV // '';
if ($cmd eq 'gen') {
	gen(@ARGV);
} elsif ($cmd eq 'apply') {
	apply(@ARGV);
} elsif ($cmd eq 'stat') {
	stat_dir(@ARGV);
} elsif ($cmd eq 'untrash') {
	untrash(@ARGV);
} elsif ($cmd eq 'newmail') {
	newmail(@ARGV);
} else {
	die "usage: bench-changes.pl gen CORPUS SEED PERCENT |" .
	    " apply CHANGES CORPUS TARGET | stat DIR | untrash DIR |" .
	    " newmail CHANGES CORPUS\n";
}
exit 0;

# The message key of a file name (see the top of this file).
sub key_of {
	my ($name) = @_;
	$name =~ s/:2,.*\z//s;
	$name =~ s/,U=\d+//;
	return $name;
}

# Every message of a Maildir: [folder, subdir, name], folder relative to
# the root ("" for INBOX), subdir "cur" or "new".
sub messages {
	my ($root) = @_;
	my @m;
	$root =~ s{/+\z}{};
	find({ no_chdir => 1, wanted => sub {
		my $p = $File::Find::name;
		return unless -f $p;
		return unless $p =~ m{\A\Q$root\E/(?:(.*)/)?(cur|new)/([^/]+)\z}s;
		my ($folder, $sub, $name) = (defined $1 ? $1 : '', $2, $3);
		return if $name =~ /\A\./;
		push @m, [$folder, $sub, $name];
	} }, $root);
	return @m;
}

sub gen {
	my ($corpus, $seed, $pct) = @_;
	die "gen: CORPUS SEED PERCENT\n" unless defined $pct;
	my @m = sort { $a->[0] cmp $b->[0] ||
	    key_of($a->[2]) cmp key_of($b->[2]) || $a->[2] cmp $b->[2] }
	    messages($corpus);
	my $n = @m;
	die "gen: no messages in '$corpus'\n" unless $n;
	my $k = int($n * $pct / 100 + 0.5);
	$k = 1 if $k < 1;
	die "gen: $pct% of $n messages three times is too many\n"
	    if 3 * $k > $n;

	srand($seed);
	my @idx = (0 .. $n - 1);
	for (my $i = $n - 1; $i > 0; $i--) {
		my $j = int(rand($i + 1));
		@idx[$i, $j] = @idx[$j, $i];
	}

	my (@flag, @exp, @new);
	my %used;
	# Flag changes: only messages in cur/ with an info part, so the
	# change is a plain rename within cur/.
	for my $i (@idx) {
		last if @flag == $k;
		my ($f, $s, $name) = @{ $m[$i] };
		next unless $s eq 'cur' && $name =~ /:2,/;
		push @flag, $i;
		$used{$i} = 1;
	}
	for my $i (@idx) {
		last if @exp == $k;
		next if $used{$i};
		push @exp, $i;
		$used{$i} = 1;
	}
	for my $i (@idx) {
		last if @new == $k;
		next if $used{$i};
		push @new, $i;
		$used{$i} = 1;
	}
	my $c = 0;
	for my $i (@flag) {
		my ($f, $s, $name) = @{ $m[$i] };
		printf "F\t%s\t%s\t%s\n", $f, key_of($name),
		    ($c++ % 2) ? 'S' : 'F';
	}
	for my $i (@exp) {
		my ($f, $s, $name) = @{ $m[$i] };
		printf "E\t%s\t%s\n", $f, key_of($name);
	}
	$c = 0;
	for my $i (@new) {
		my ($f, $s, $name) = @{ $m[$i] };
		my $rel = ($f eq '' ? '' : "$f/") . "$s/$name";
		printf "N\t%s\t%s\t1700000000.B%dR%d.msync-bench\n", $f, $rel,
		    $c++, $seed;
	}
}

sub newmail {
	my ($changes, $corpus) = @_;
	die "newmail: CHANGES CORPUS\n" unless defined $corpus;
	open(my $in, '<', $changes) or die "newmail: $changes: $!\n";
	my ($all, %n) = ('');
	while (my $line = <$in>) {
		chomp $line;
		my @c = split /\t/, $line, -1;
		$n{$c[0]}++;
		next unless $c[0] eq 'N';
		open(my $t, '<:raw', "$corpus/$c[2]")
		    or die "newmail: $corpus/$c[2]: $!\n";
		local $/;
		$all .= "X-Msync-Bench: new message $c[3]\n" . <$t>;
		close($t);
	}
	close($in);
	my $lz = '-';
	my $tmp = "$changes.newmail.$$";
	if (open(my $o, '>:raw', $tmp)) {
		print $o $all;
		close($o);
		my $out = qx{lz4 -q -1 -c < '$tmp' 2>/dev/null};
		$lz = length($out) if $? == 0 && length($out) > 0;
		unlink($tmp);
	}
	printf "%d %s %d %d %d\n", length($all), $lz, $n{N} // 0,
	    $n{F} // 0, $n{E} // 0;
}

# Toggles flag letter $l in the info of file name $name (cur/ form).
sub toggle {
	my ($name, $l) = @_;
	my ($base, $flags) = $name =~ /\A(.*?):2,(.*)\z/s
	    or return "$name:2,$l";
	my %f = map { $_ => 1 } split //, $flags;
	if ($f{$l}) {
		delete $f{$l};
	} else {
		$f{$l} = 1;
	}
	return "$base:2," . join('', sort keys %f);
}

sub apply {
	my ($changes, $corpus, $target) = @_;
	die "apply: CHANGES CORPUS TARGET\n" unless defined $target;
	open(my $in, '<', $changes) or die "apply: $changes: $!\n";
	my @ch = map { chomp; [split /\t/, $_, -1] } <$in>;
	close($in);

	# key -> [subdir, name] for every folder the change set names.
	my %want = map { $_->[1] => 1 } @ch;
	my %map;
	for my $folder (keys %want) {
		my $fdir = $folder eq '' ? $target : "$target/$folder";
		for my $sub (qw(cur new)) {
			opendir(my $d, "$fdir/$sub") or next;
			for my $name (readdir $d) {
				next if $name =~ /\A\./;
				$map{$folder}{key_of($name)} = [$sub, $name];
			}
			closedir($d);
		}
	}

	my %done = (F => 0, E => 0, N => 0);
	my %missing = (F => 0, E => 0);
	for my $c (@ch) {
		my ($op, $folder) = @$c;
		my $fdir = $folder eq '' ? $target : "$target/$folder";
		if ($op eq 'F' || $op eq 'E') {
			my $e = $map{$folder}{$c->[2]};
			unless ($e) {
				$missing{$op}++;
				next;
			}
			my ($sub, $name) = @$e;
			if ($op eq 'E') {
				unlink("$fdir/$sub/$name")
				    or die "apply: unlink $fdir/$sub/$name: $!\n";
			} else {
				my $to = toggle($name, $c->[3]);
				rename("$fdir/$sub/$name", "$fdir/cur/$to")
				    or die "apply: rename $fdir/$sub/$name: $!\n";
			}
			$done{$op}++;
		} elsif ($op eq 'N') {
			my ($tmpl, $newname) = @$c[2, 3];
			open(my $t, '<:raw', "$corpus/$tmpl")
			    or die "apply: $corpus/$tmpl: $!\n";
			local $/;
			my $body = <$t>;
			close($t);
			mkdir("$fdir/tmp") unless -d "$fdir/tmp";
			my $tmp = "$fdir/tmp/$newname";
			open(my $o, '>:raw', $tmp) or die "apply: $tmp: $!\n";
			print $o "X-Msync-Bench: new message $newname\n", $body;
			close($o) or die "apply: $tmp: $!\n";
			rename($tmp, "$fdir/new/$newname")
			    or die "apply: rename $tmp: $!\n";
			$done{N}++;
		}
	}
	printf "applied: %d flag changes, %d expunges, %d new messages" .
	    "%s\n", $done{F}, $done{E}, $done{N},
	    ($missing{F} + $missing{E}) ?
	    " ($missing{F} flag changes and $missing{E} expunges not found)" :
	    '';
	exit(($missing{F} + $missing{E}) ? 1 : 0);
}

sub stat_dir {
	my ($dir) = @_;
	die "stat: DIR\n" unless defined $dir;
	my ($n, $seen, $flagged) = (0, 0, 0);
	for my $m (messages($dir)) {
		$n++;
		my $name = $m->[2];
		next unless $name =~ /:2,([A-Za-z]*)/;
		my $fl = $1;
		$seen++ if $fl =~ /S/;
		$flagged++ if $fl =~ /F/;
	}
	print "$n $seen $flagged\n";
}

sub untrash {
	my ($dir) = @_;
	die "untrash: DIR\n" unless defined $dir;
	$dir =~ s{/+\z}{};
	my $n = 0;
	for my $m (messages($dir)) {
		my ($f, $s, $name) = @$m;
		my ($base, $fl) = $name =~ /\A(.*:2,)([A-Za-z]*)\z/s or next;
		next unless $fl =~ tr/T//d;
		my $d = ($f eq '' ? $dir : "$dir/$f") . "/$s";
		rename("$d/$name", "$d/$base$fl")
		    or die "untrash: rename $d/$name: $!\n";
		$n++;
	}
	print "untrash: cleared T on $n messages\n";
}
