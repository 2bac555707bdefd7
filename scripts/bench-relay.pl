#!/usr/bin/perl
# bench-relay.pl -- a byte-counting TCP front end for a private sshd, used
# by scripts/bench.sh --ssh to measure the bytes a tool puts on the wire.
#
#   perl scripts/bench-relay.pl DIR COMMAND [ARG...]
#
# Listens on 127.0.0.1 on a port the kernel picks and writes that port
# to DIR/port.  For every connection it starts COMMAND (meant to be
# `sshd -i -f CONFIG`: a real sshd in inetd mode, which needs no port of
# its own) on a pair of pipes and copies bytes both ways, counting them.
# When both directions have ended it appends one line to DIR/bytes.log:
#
#   <client-to-server bytes> TAB <server-to-client bytes> TAB
#   <user CPU seconds> TAB <system CPU seconds>
#
# the CPU times being those of the sshd process tree (sshd, the session
# and the command it ran), as far as each process waited for its children.
# These are the bytes of the SSH connection itself (TCP payload: the
# encrypted stream, including the key exchange), not the IP and TCP
# headers.  While a connection is open, DIR/active.<pid> exists, so a
# caller can wait until every connection it made has been accounted for.
# COMMAND's stderr goes to DIR/sshd.log.
#
# The relay runs until it gets SIGTERM (bench.sh kills it by its pid).
# It only ever listens on and talks to 127.0.0.1.
use strict;
use warnings;
use Errno qw(EAGAIN EINTR EWOULDBLOCK);
use Fcntl qw(:flock F_GETFL F_SETFL O_NONBLOCK);
use IO::Socket::INET;
use POSIX qw(:sys_wait_h);
use Socket qw(SHUT_WR);

my ($dir, @cmd) = @ARGV;
die "usage: bench-relay.pl DIR COMMAND [ARG...]\n" unless defined $dir && @cmd;

my $listen = IO::Socket::INET->new(
    LocalAddr => '127.0.0.1',
    LocalPort => 0,
    Proto     => 'tcp',
    Listen    => 32,
    ReuseAddr => 1,
) or die "bench-relay: listen: $!\n";

{
	my $tmp = "$dir/port.tmp";
	open(my $f, '>', $tmp) or die "bench-relay: $tmp: $!\n";
	print $f $listen->sockport, "\n";
	close($f) or die "bench-relay: $tmp: $!\n";
	rename($tmp, "$dir/port") or die "bench-relay: rename: $!\n";
}

my $stop = 0;
$SIG{TERM} = $SIG{INT} = sub { $stop = 1; };
$SIG{CHLD} = sub { 1 while waitpid(-1, WNOHANG) > 0; };

while (!$stop) {
	my $c = $listen->accept;
	unless ($c) {
		next if $! == EINTR;
		last if $stop;
		die "bench-relay: accept: $!\n";
	}
	my $pid = fork;
	if (!defined $pid) {
		warn "bench-relay: fork: $!\n";
		close($c);
		next;
	}
	if ($pid == 0) {
		$SIG{TERM} = $SIG{INT} = 'DEFAULT';
		$SIG{CHLD} = 'DEFAULT';
		close($listen);
		serve($c);
		POSIX::_exit(0);
	}
	close($c);
}
exit 0;

sub nonblock {
	my ($fh) = @_;
	my $fl = fcntl($fh, F_GETFL, 0) or die "fcntl: $!\n";
	fcntl($fh, F_SETFL, $fl | O_NONBLOCK) or die "fcntl: $!\n";
}

# Relays one connection through a fresh COMMAND; logs the byte counts.
sub serve {
	my ($sock) = @_;
	my $active = "$dir/active.$$";
	if (open(my $mark, '>', $active)) {
		close($mark);
	}

	pipe(my $to_r, my $to_w) or die "pipe: $!\n";	# relay -> sshd stdin
	pipe(my $from_r, my $from_w) or die "pipe: $!\n";	# sshd stdout -> relay
	my $kid = fork;
	die "fork: $!\n" unless defined $kid;
	if ($kid == 0) {
		close($sock);
		close($to_w);
		close($from_r);
		open(STDIN, '<&', $to_r) or POSIX::_exit(127);
		open(STDOUT, '>&', $from_w) or POSIX::_exit(127);
		open(STDERR, '>>', "$dir/sshd.log") or POSIX::_exit(127);
		{ no warnings 'exec'; exec { $cmd[0] } @cmd; }
		POSIX::_exit(127);
	}
	close($to_r);
	close($from_w);
	nonblock($_) for ($sock, $to_w, $from_r);

	my ($c2s, $s2c) = (0, 0);
	my ($buf_c2s, $buf_s2c) = ('', '');	# waiting to be written
	my ($sock_eof, $sshd_eof) = (0, 0);	# read side ended
	my ($to_closed, $sock_shut) = (0, 0);	# write side ended
	my $cap = 1 << 20;
	my $deadline;

	while (1) {
		# Reading side done and buffers flushed: close the write ends.
		if ($sock_eof && $buf_c2s eq '' && !$to_closed) {
			close($to_w);
			$to_closed = 1;
		}
		if ($sshd_eof && $buf_s2c eq '' && !$sock_shut) {
			shutdown($sock, SHUT_WR);
			$sock_shut = 1;
			# The client closes its end once it has read the
			# end of the stream; do not wait for ever if not.
			$deadline = time + 5;
		}
		last if $sshd_eof && $sock_shut && ($sock_eof || time > $deadline);

		my ($rin, $win) = ('', '');
		vec($rin, fileno($sock), 1) = 1
		    if !$sock_eof && length($buf_c2s) < $cap;
		vec($rin, fileno($from_r), 1) = 1
		    if !$sshd_eof && length($buf_s2c) < $cap;
		vec($win, fileno($to_w), 1) = 1
		    if !$to_closed && $buf_c2s ne '';
		vec($win, fileno($sock), 1) = 1
		    if !$sock_shut && $buf_s2c ne '';
		my $n = select(my $rout = $rin, my $wout = $win, undef, 1);
		if ($n < 0) {
			next if $! == EINTR;
			last;
		}
		next if $n == 0;

		if (!$sock_eof && vec($rout, fileno($sock), 1)) {
			my $r = sysread($sock, my $b, 65536);
			if (!defined $r) {
				$sock_eof = 1 unless $! == EAGAIN ||
				    $! == EWOULDBLOCK || $! == EINTR;
			} elsif ($r == 0) {
				$sock_eof = 1;
			} else {
				$c2s += $r;
				$buf_c2s .= $b;
			}
		}
		if (!$sshd_eof && vec($rout, fileno($from_r), 1)) {
			my $r = sysread($from_r, my $b, 65536);
			if (!defined $r) {
				$sshd_eof = 1 unless $! == EAGAIN ||
				    $! == EWOULDBLOCK || $! == EINTR;
			} elsif ($r == 0) {
				$sshd_eof = 1;
			} else {
				$s2c += $r;
				$buf_s2c .= $b;
			}
		}
		if (!$to_closed && $buf_c2s ne '' &&
		    vec($wout, fileno($to_w), 1)) {
			my $w = syswrite($to_w, $buf_c2s);
			if (defined $w) {
				substr($buf_c2s, 0, $w, '');
			} elsif ($! != EAGAIN && $! != EWOULDBLOCK &&
			    $! != EINTR) {
				# sshd is gone: drop what it will never read.
				$buf_c2s = '';
				$sock_eof = 1;
			}
		}
		if (!$sock_shut && $buf_s2c ne '' &&
		    vec($wout, fileno($sock), 1)) {
			my $w = syswrite($sock, $buf_s2c);
			if (defined $w) {
				substr($buf_s2c, 0, $w, '');
			} elsif ($! != EAGAIN && $! != EWOULDBLOCK &&
			    $! != EINTR) {
				# The client is gone.
				$buf_s2c = '';
				$sock_eof = $sock_shut = 1;
				$sshd_eof = 1;
			}
		}
	}
	close($sock);
	close($to_w) unless $to_closed;
	close($from_r);
	waitpid($kid, 0);
	# CPU time of the sshd tree this process waited for.
	my (undef, undef, $cuser, $csys) = times;

	if (open(my $log, '>>', "$dir/bytes.log")) {
		flock($log, LOCK_EX);
		printf $log "%d\t%d\t%.2f\t%.2f\n", $c2s, $s2c, $cuser, $csys;
		close($log);
	}
	unlink($active);
}
