/*
 * test_fprint.c — the header fingerprint (src/fprint.c): the same for a
 * message's LF content (the Maildir side) and for what an IMAP server
 * returns for HEADER.FIELDS (MESSAGE-ID DATE) with its RFC822.SIZE;
 * folding, case and white space do not matter; no Message-ID is no
 * fingerprint; any change of Message-ID, Date or size is another one.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "msync.h"
#include "fprint.h"

static const char msg_lf[] =
    "Received: from x\n\tby y\n"
    "Date: Mon, 1 Jan 2024 10:00:00 +0000\n"
    "Message-ID: <a.1@example.org>\n"
    "Subject: hi\n"
    "\n"
    "Message-ID: <not.this@example.org>\n"
    "body\n";

/* The message's fingerprint as the Maildir side computes it. */
static int
fp_stream(const char *m, size_t n, size_t piece, struct guid *g)
{
	struct fprint_ctx	 c;

	fprint_init(&c);
	for (size_t i = 0; i < n; i += piece)
		fprint_update(&c, m + i, n - i < piece ? n - i : piece);
	return fprint_final(&c, g);
}

static void
test_both_sides(void **state)
{
	/* What Dovecot sends: the two fields, CRLF, a blank line. */
	static const char hf[] =
	    "Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
	    "Message-ID: <a.1@example.org>\r\n\r\n";
	struct guid	 a, b, c;
	size_t		 lines = 0;

	for (size_t i = 0; i < sizeof(msg_lf) - 1; i++)
		lines += msg_lf[i] == '\n';
	assert_int_equal(fp_stream(msg_lf, sizeof(msg_lf) - 1, 4096, &a), 0);
	assert_int_equal(fp_stream(msg_lf, sizeof(msg_lf) - 1, 1, &c), 0);
	assert_memory_equal(&a, &c, sizeof(a));
	assert_int_equal(fprint_of(hf, sizeof(hf) - 1,
	    sizeof(msg_lf) - 1 + lines, &b), 0);
	assert_memory_equal(&a, &b, sizeof(a));
	/* Another size is another fingerprint. */
	assert_int_equal(fprint_of(hf, sizeof(hf) - 1,
	    sizeof(msg_lf) - 1 + lines + 1, &b), 0);
	assert_memory_not_equal(&a, &b, sizeof(a));
}

static void
test_crlf_content(void **state)
{
	char		 crlf[512];
	size_t		 o = 0;
	struct guid	 a, b;

	for (size_t i = 0; i < sizeof(msg_lf) - 1; i++) {
		if (msg_lf[i] == '\n')
			crlf[o++] = '\r';
		crlf[o++] = msg_lf[i];
	}
	assert_int_equal(fp_stream(msg_lf, sizeof(msg_lf) - 1, 7, &a), 0);
	assert_int_equal(fp_stream(crlf, o, 3, &b), 0);
	assert_memory_equal(&a, &b, sizeof(a));
}

static void
test_normalised(void **state)
{
	static const char x[] = "message-id:   <a.1@example.org>\r\n"
	    "DATE: Mon,  1 Jan 2024\r\n 10:00:00 +0000 \r\n\r\n";
	static const char y[] = "Date: Mon, 1 Jan 2024 10:00:00 +0000\n"
	    "Message-Id: <a.1@example.org>\n\n";
	static const char z[] = "Date: Tue, 2 Jan 2024 10:00:00 +0000\n"
	    "Message-Id: <a.1@example.org>\n\n";
	static const char nodate[] = "Message-Id: <a.1@example.org>\n\n";
	struct guid	 a, b, c, d;

	assert_int_equal(fprint_of(x, sizeof(x) - 1, 10, &a), 0);
	assert_int_equal(fprint_of(y, sizeof(y) - 1, 10, &b), 0);
	assert_memory_equal(&a, &b, sizeof(a));
	assert_int_equal(fprint_of(z, sizeof(z) - 1, 10, &c), 0);
	assert_memory_not_equal(&a, &c, sizeof(a));
	assert_int_equal(fprint_of(nodate, sizeof(nodate) - 1, 10, &d), 0);
	assert_memory_not_equal(&a, &d, sizeof(a));
}

static void
test_no_message_id(void **state)
{
	static const char none[] = "Date: Mon, 1 Jan 2024\nSubject: x\n\n"
	    "Message-ID: <in.body@example.org>\n";
	static const char empty[] = "Message-ID:   \n\n";
	static const char cut[] = "Message-ID";
	struct guid	 g;

	assert_int_equal(fprint_of(none, sizeof(none) - 1, 10, &g),
	    MSYNC_ERR_NOTFOUND);
	assert_int_equal(fprint_of(empty, sizeof(empty) - 1, 10, &g),
	    MSYNC_ERR_NOTFOUND);
	assert_int_equal(fprint_of(cut, sizeof(cut) - 1, 10, &g),
	    MSYNC_ERR_NOTFOUND);
	assert_int_equal(fprint_of("", 0, 0, &g), MSYNC_ERR_NOTFOUND);
	assert_int_equal(fp_stream(none, sizeof(none) - 1, 5, &g),
	    MSYNC_ERR_NOTFOUND);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_both_sides),
		cmocka_unit_test(test_crlf_content),
		cmocka_unit_test(test_normalised),
		cmocka_unit_test(test_no_message_id),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
