/*
 * test_tls.c — the parts of tls.c that need no server: pins as users
 * write them.  The handshake, verification and refusals are tested
 * against a real Dovecot in tests/integration/t85xx.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "msync.h"
#include "tls.h"

#define HEX64 "8634fb0b9b26e9bd269fee06cb07a044a1b39f5b2e1d034a2d6f1cce51ff29e2"

static const struct {
	const char	*in;
	int		 ok;
} pins[] = {
	{ "sha256:" HEX64, 1 },
	{ "SHA256:8634FB0B9B26E9BD269FEE06CB07A044A1B39F5B2E1D034A2D6F1CCE51FF29E2", 1 },
	{ "sha256:86:34:FB:0B:9B:26:E9:BD:26:9F:EE:06:CB:07:A0:44:A1:B3:9F:5B:"
	  "2E:1D:03:4A:2D:6F:1C:CE:51:FF:29:E2", 1 },
	{ "", 0 },
	{ "sha256:", 0 },
	{ HEX64, 0 },				/* no algorithm */
	{ "sha1:" HEX64, 0 },
	{ "sha256:" HEX64 "00", 0 },		/* too long */
	{ "sha256:8634fb0b9b26e9bd269fee06cb07a044a1b39f5b2e1d034a2d6f1cce51ff29e", 0 },
	{ "sha256:g634fb0b9b26e9bd269fee06cb07a044a1b39f5b2e1d034a2d6f1cce51ff29e2", 0 },
	{ "sha256: " HEX64, 0 },
};

static void
test_fingerprint(void **state)
{
	char	 out[65];
	size_t	 i;

	for (i = 0; i < sizeof(pins) / sizeof(pins[0]); i++) {
		memset(out, 'x', sizeof(out));
		if (pins[i].ok) {
			assert_int_equal(tls_parse_fingerprint(pins[i].in,
			    out), 0);
			assert_string_equal(out, HEX64);
		} else
			assert_int_equal(tls_parse_fingerprint(pins[i].in,
			    out), MSYNC_ERR_USAGE);
	}
	assert_int_equal(tls_parse_fingerprint(NULL, out), MSYNC_ERR_USAGE);
}

/* A refused connection is one line and MSYNC_ERR_UNREACHABLE. */
static void
test_bad_port(void **state)
{
	char	*why = NULL;
	int	 fd = 5;

	assert_int_equal(tls_tcp_connect("127.0.0.1", 0, 1000, &fd, &why),
	    MSYNC_ERR_USAGE);
	assert_int_equal(fd, -1);
	assert_non_null(why);
	assert_null(strchr(why, '\n'));
	free(why);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fingerprint),
		cmocka_unit_test(test_bad_port),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
