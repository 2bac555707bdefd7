#!/usr/bin/env bash
test_description='the test library itself: Maildir helpers, digests, assertions'
. "$(dirname "$0")/lib.sh"

test_expect_success 'the trash directory is the working directory' '
	test "$(pwd)" = "$TRASH" &&
	case $TRASH in "$TEST_DIR"/trash/*|"$MSYNC_TEST_TRASH_ROOT"/*) ;; *) false ;; esac
'

test_expect_success 'HOME and XDG directories are inside the trash' '
	case $HOME in "$TRASH"/*) ;; *) false ;; esac &&
	case $XDG_STATE_HOME in "$TRASH"/*) ;; *) false ;; esac &&
	case $XDG_CACHE_HOME in "$TRASH"/*) ;; *) false ;; esac &&
	test_path_is_dir "$XDG_STATE_HOME"
'

test_expect_success 'MSYNC is an absolute path, msync on PATH points to it' '
	case $MSYNC in /*) ;; *) false ;; esac &&
	test "$(readlink "$TRASH_ROOT/bin/msync")" = "$MSYNC" &&
	case $PATH in "$TRASH_ROOT/bin":*) ;; *) false ;; esac
'

test_expect_success 'make_maildir and make_folder' '
	make_maildir m &&
	test_path_is_dir m/cur && test_path_is_dir m/new && test_path_is_dir m/tmp &&
	make_folder m2 Work/2024 &&
	test_path_is_dir m2/cur &&
	test_path_is_dir m2/.Work.2024/new &&
	test "$(folder_path m2 A/B)" = m2/.A.B &&
	test "$(folder_path m2 INBOX)" = m2
'

test_expect_success 'gen_message is deterministic and unique per number' '
	gen_message 1 >g1 && gen_message 1 >g1b && gen_message 2 >g2 &&
	gen_message 1 other >g1o &&
	test_cmp g1 g1b &&
	! cmp -s g1 g2 &&
	! cmp -s g1 g1o &&
	grep -q "^Message-ID: <msg.1.msync-test@example.org>$" g1 &&
	grep -q "^Subject: msg message 1$" g1
'

test_expect_success 'deliver without flags goes to new/, with flags to cur/' '
	make_maildir d &&
	p1=$(deliver d) &&
	p2=$(deliver d "" SF) &&
	p3=$(deliver d g1 "") &&
	case $p1 in d/new/*) ;; *) false ;; esac &&
	case $p2 in d/cur/*:2,FS) ;; *) false ;; esac &&
	case $p3 in d/cur/*:2,) ;; *) false ;; esac &&
	test_path_is_file "$p1" && test_path_is_file "$p2" &&
	test_cmp g1 "$p3" &&
	test "$(count_msgs d)" = 3 &&
	test "$(ls d/tmp | wc -l)" = 0
'

test_expect_success 'deliver names are unique, also from subshells and stdin' '
	make_maildir u &&
	for i in 1 2 3 4 5 6 7 8 9 10; do
		deliver u >/dev/null || return 1
	done &&
	gen_message 99 | deliver u - S >/dev/null &&
	test "$(count_msgs u)" = 11 &&
	test "$(maildir_digest u | sort -u | wc -l)" = 11
'

test_expect_success 'maildir_digest: equal trees give equal digests' '
	make_folder a Work && make_folder b Work &&
	gen_message 10 >m10 && gen_message 11 >m11 && gen_message 12 >m12 &&
	deliver a m10 S >/dev/null && deliver a m11 >/dev/null &&
	deliver "$(folder_path a Work)" m12 FR >/dev/null &&
	deliver b m11 "" >/dev/null && deliver b m10 S >/dev/null &&
	deliver "$(folder_path b Work)" m12 RF >/dev/null &&
	maildir_digest a >da && maildir_digest b >db &&
	test_cmp da db &&
	test_cmp_trees a b &&
	test_line_count = 3 da
'

test_expect_success 'maildir_digest: format, flags sorted, new/ has no flags' '
	md5=$(md5sum <m12 | cut -d" " -f1) &&
	grep -qx "\.Work  $md5  FR" da &&
	md5=$(md5sum <m11 | cut -d" " -f1) &&
	grep -qx "\.  $md5  -" da &&
	maildir_digest --names a >na &&
	grep -q "^Work  " na && grep -q "^INBOX  " na
'

test_expect_success 'maildir_digest: CRLF and LF content are the same message' '
	make_maildir crlf && make_maildir lf &&
	sed "s/\$/\r/" m10 >m10.crlf &&
	! cmp -s m10 m10.crlf &&
	deliver crlf m10.crlf S >/dev/null && deliver lf m10 S >/dev/null &&
	test_cmp_trees crlf lf
'

test_expect_success 'maildir_digest: a flag, a message or a folder differs' '
	cp -R a a-flag && set_flags "$(ls a-flag/cur/*:2,S | head -n 1)" SF &&
	test_must_fail test_cmp_trees a a-flag &&
	cp -R a a-more && deliver a-more m12 S >/dev/null &&
	test_must_fail test_cmp_trees a a-more &&
	cp -R a a-dup && deliver a-dup m10 S >/dev/null &&
	test_must_fail test_cmp_trees a a-dup &&
	cp -R a a-folder && mv a-folder/.Work a-folder/.Play &&
	test_must_fail test_cmp_trees a a-folder &&
	cp -R a a-tmp && cp m12 a-tmp/tmp/junk && cp m12 a-tmp/index.junk &&
	test_cmp_trees a a-tmp
'

test_expect_success 'count_msgs and count_all' '
	test "$(count_msgs a)" = 2 &&
	test "$(count_msgs a/.Work)" = 1 &&
	test "$(count_all a)" = 3 &&
	make_maildir empty && test "$(count_msgs empty)" = 0
'

test_expect_success 'test_must_fail, test_expect_code, test_might_fail' '
	test_must_fail false &&
	test_must_fail sh -c "exit 75" &&
	! test_must_fail true 2>/dev/null &&
	! test_must_fail sh -c "kill -SEGV \$\$" 2>/dev/null &&
	! test_must_fail sh -c "exit 86" 2>/dev/null &&
	! test_must_fail no-such-command-xyz 2>/dev/null &&
	test_expect_code 75 sh -c "exit 75" &&
	! test_expect_code 75 sh -c "exit 76" 2>/dev/null &&
	test_might_fail false && test_might_fail true &&
	! test_might_fail sh -c "kill -ABRT \$\$" 2>/dev/null
'

test_when_finished_ran=
test_expect_success 'test_when_finished runs after the body' '
	test_when_finished "test_when_finished_ran=yes" &&
	test -z "$test_when_finished_ran"
'

test_expect_success 'test_when_finished ran' '
	test "$test_when_finished_ran" = yes
'

test_expect_success 'prerequisites: set, negated, lazy' '
	test_set_prereq HAVE_IT &&
	test_have_prereq HAVE_IT &&
	! test_have_prereq NEVER_SET &&
	test_have_prereq !NEVER_SET &&
	! test_have_prereq HAVE_IT,NEVER_SET &&
	test_lazy_prereq LAZY_TRUE true && test_have_prereq LAZY_TRUE &&
	test_lazy_prereq LAZY_FALSE false && ! test_have_prereq LAZY_FALSE
'

test_expect_success 'skip-or-die: a missing required prerequisite fails' '
	cat >"$TRASH/die.sh" <<-EOF &&
	test_description="inner"
	. "$TEST_DIR/lib.sh"
	test_lazy_prereq FAKED false
	test_prereq_env FAKED MSYNC_TEST_FAKED
	test_expect_success FAKED "needs FAKED" "true"
	test_done
	EOF
	# Run from a copy of the library, so the inner trash is ours.
	mkdir inner && cp "$TEST_DIR/lib.sh" inner/ &&
	sed "s|\$TEST_DIR/lib.sh|$TRASH/inner/lib.sh|" die.sh >inner/t9999-inner.sh &&
	MSYNC_TEST_TRASH_ROOT="$TRASH/inner-trash" MSYNC_TEST_FAKED=true \
	    test_expect_code 1 bash inner/t9999-inner.sh >out-die &&
	grep -q "^not ok 1 - prerequisite FAKED (MSYNC_TEST_FAKED=true" out-die &&
	grep -q "^ok 2 # skip needs FAKED (missing FAKED)" out-die &&
	MSYNC_TEST_TRASH_ROOT="$TRASH/inner-trash" \
	    bash inner/t9999-inner.sh >out-skip &&
	grep -q "^ok 1 # skip needs FAKED" out-skip &&
	grep -q "^1..1$" out-skip &&
	MSYNC_TEST_TRASH_ROOT="$TRASH/inner-trash" MSYNC_TEST_FAKED=false \
	    bash inner/t9999-inner.sh >out-off &&
	grep -q "^ok 1 # skip needs FAKED" out-off &&
	cat >inner/t9995-body.sh <<-EOF &&
	. "$TRASH/inner/lib.sh"
	test_lazy_prereq FAKED false
	test_prereq_env FAKED MSYNC_TEST_FAKED
	test_expect_success "asks inside" "test_have_prereq FAKED || echo skipping"
	test_expect_success "next" "true"
	test_done
	EOF
	MSYNC_TEST_TRASH_ROOT="$TRASH/inner-trash" MSYNC_TEST_FAKED=true \
	    test_expect_code 1 bash inner/t9995-body.sh >out-body &&
	grep -q "^not ok 1 - asks inside" out-body &&
	grep -q "^ok 2 - next" out-body &&
	grep -qx "1..2" out-body
'

test_expect_success 'TAP output; a failing script keeps its trash, a passing one removes it' '
	cat >inner/t9998-fail.sh <<-EOF &&
	. "$TRASH/inner/lib.sh"
	test_expect_success "leave a file" "echo kept >file && echo some output"
	test_expect_success "fail" "echo the-failure-output && false"
	test_expect_success NEVER_SET "skipped" "false"
	test_expect_failure "known breakage" "false"
	test_expect_failure "fixed breakage" "true"
	test_done
	EOF
	MSYNC_TEST_TRASH_ROOT="$TRASH/inner-trash" \
	    test_expect_code 1 bash inner/t9998-fail.sh >out-fail &&
	grep -q "^not ok 2 - fail$" out-fail &&
	grep -q "^ok 3 # skip skipped (missing NEVER_SET)$" out-fail &&
	grep -q "^not ok 4 - known breakage # TODO known breakage$" out-fail &&
	grep -q "^ok 5 - fixed breakage # TODO known breakage vanished$" out-fail &&
	grep -q "^1\.\.5$" out-fail &&
	grep -q "^#	the-failure-output" out-fail &&
	grep -q "trash directory kept: $TRASH/inner-trash/t9998-fail" out-fail &&
	test_path_is_file inner-trash/t9998-fail/file &&
	test_path_is_missing inner-trash/t9999-inner
'

test_expect_success 'skip_all skips the whole script' '
	cat >inner/t9997-skip.sh <<-EOF &&
	. "$TRASH/inner/lib.sh"
	test_require_prereq NEVER_SET
	test_expect_success "never run" "false"
	test_done
	EOF
	MSYNC_TEST_TRASH_ROOT="$TRASH/inner-trash" \
	    bash inner/t9997-skip.sh >out-skipall &&
	grep -qx "1..0 # SKIP missing NEVER_SET" out-skipall &&
	test_line_count = 1 out-skipall
'

test_expect_success 'a script that exits without test_done is broken' '
	cat >inner/t9996-exit.sh <<-EOF &&
	. "$TRASH/inner/lib.sh"
	test_atexit "echo daemon stopped >\"$TRASH/atexit-ran\""
	test_expect_success "exit in a body" "exit 0"
	test_done
	EOF
	MSYNC_TEST_TRASH_ROOT="$TRASH/inner-trash" \
	    test_must_fail bash inner/t9996-exit.sh >out-exit &&
	grep -q "^Bail out! t9996-exit exited" out-exit &&
	grep -qx "daemon stopped" atexit-ran
'

test_done
