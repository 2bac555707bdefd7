#!/usr/bin/env bash
test_description='make install/uninstall with PREFIX and DESTDIR; systemd units verify;
bash completion offers options, pair names and location prefixes'
. "$(dirname "$0")/lib.sh"

test_lazy_prereq SYSTEMD_ANALYZE 'command -v systemd-analyze'
test_lazy_prereq ZSH 'command -v zsh'

# The files make install puts under a prefix, relative to it.
cat >expected <<-\EOF
bin/msync
lib/systemd/system/msyncd.service
lib/systemd/system/msyncd.socket
lib/systemd/system/msyncd@.service
lib/systemd/user/msync-watch@.service
lib/systemd/user/msync@.service
lib/systemd/user/msync@.timer
share/bash-completion/completions/msync
share/man/man1/msync.1
share/man/man5/msync.5
share/zsh/vendor-completions/_msync
EOF

test_expect_success 'make install DESTDIR=... PREFIX=/usr puts every file in place' '
	make -s -C "$SRCDIR" install DESTDIR="$TRASH/root" PREFIX=/usr >make.out 2>&1 &&
	(cd root/usr && find . -type f | sed "s|^\./||" | LC_ALL=C sort) >actual &&
	test_cmp expected actual &&
	test -x root/usr/bin/msync &&
	root/usr/bin/msync --version | grep -q "^msync " &&
	test "$(stat -c %a root/usr/share/man/man1/msync.1)" = 644 &&
	grep -q "^ExecStart=/usr/bin/msync %i$" root/usr/lib/systemd/user/msync@.service &&
	grep -q "^ExecStart=/usr/bin/msync --watch %i$" root/usr/lib/systemd/user/msync-watch@.service &&
	! grep -r "@BINDIR@" root
'

test_expect_success 'make uninstall with the same DESTDIR and PREFIX leaves no file' '
	make -s -C "$SRCDIR" uninstall DESTDIR="$TRASH/root" PREFIX=/usr >make.out 2>&1 &&
	test -z "$(find root -type f)"
'

test_expect_success SYSTEMD_ANALYZE 'systemd-analyze verify accepts the units' '
	make -s -C "$SRCDIR" install PREFIX="$TRASH/prefix" >make.out 2>&1 &&
	mkdir units && cp prefix/lib/systemd/user/* units/ &&
	(cd units &&
	 ln -s msync@.service msync@work.service &&
	 ln -s msync@.timer msync@work.timer &&
	 ln -s msync-watch@.service msync-watch@work.service &&
	 systemd-analyze verify --man=no ./msync@work.service \
	    ./msync@work.timer ./msync-watch@work.service) &&
	make -s -C "$SRCDIR" uninstall PREFIX="$TRASH/prefix" >make.out 2>&1 &&
	test -z "$(find prefix -type f)"
'

test_expect_success SYSTEMD_ANALYZE 'systemd-analyze verify rejects a broken unit (the check can fail)' '
	sed "s|^ExecStart=.*|ExecStart=relative/msync %i|" \
	    units/msync@.service >units/broken@.service &&
	(cd units && ln -s broken@.service broken@x.service &&
	 test_must_fail systemd-analyze verify --man=no ./broken@x.service)
'

test_expect_success 'setup: a config with pairs for the completion' '
	mkdir -p "$XDG_CONFIG_HOME/msync" &&
	printf "pair work\n\ta /x\n\tb /y\npair laptop\n\ta /x\n\tb /z\ngroup daily work laptop\n" \
	    >"$XDG_CONFIG_HOME/msync/config" &&
	printf "pair other\n\ta /x\n\tb /y\n" >alt.cfg &&
	mkdir maildir-here
'

# complete_words WORDS...: what the bash completion offers for the last word.
complete_words() {
	bash --norc --noprofile -c '
		. "$0"
		complete -p msync | grep -q -- "-F _msync" || exit 3
		COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
		COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
		_msync
		printf "%s\n" "${COMPREPLY[@]}"
	' "$SRCDIR/contrib/completion/msync.bash" "$@"
}

test_expect_success 'bash: options' '
	complete_words msync --wa >out && grep -qx -- --watch out &&
	complete_words msync --js >out && grep -qx -- --json out &&
	complete_words msync --ssh "" >out && grep -qx libssh out
'

test_expect_success 'bash: pair and group names from the config, and -F FILE' '
	complete_words msync "" >out &&
	grep -qx work out && grep -qx laptop out && grep -qx daily out &&
	complete_words msync w >out && grep -qx work out && ! grep -qx laptop out &&
	complete_words msync -F alt.cfg "" >out && grep -qx other out && ! grep -qx work out
'

test_expect_success 'bash: location prefixes and paths' '
	complete_words msync mai >out &&
	grep -qx "maildir:" out && grep -qx maildir-here out &&
	complete_words msync ss >out && grep -qx "ssh://" out
'

test_expect_success ZSH 'zsh: the completion file parses' '
	zsh -n "$SRCDIR/contrib/completion/_msync"
'

test_done
