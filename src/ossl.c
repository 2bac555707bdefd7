/*
 * ossl.c — loads OpenSSL (libcrypto, then libssl) when a run needs TLS.
 * See ossl.h for why and for the rules its callers follow.
 *
 * The sonames are the ones -lcrypto and -lssl would have named, derived
 * from the headers' major version.  MSYNC_TEST_LIBSSL, in the tests only,
 * names another file to load instead of libssl (a missing one, or a
 * library without its functions), as MSYNC_TEST_LIBSSH does for libssh.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Here the names stay OpenSSL's: ossl_api.f must not expand f. */
#define OSSL_NO_NAMES
#include "ossl.h"
#include "msync.h"

#define OSSL_STR(x)		#x
#define OSSL_XSTR(x)		OSSL_STR(x)
#define LIBCRYPTO_SONAME	"libcrypto.so." OSSL_XSTR(OPENSSL_VERSION_MAJOR)
#define LIBSSL_SONAME		"libssl.so." OSSL_XSTR(OPENSSL_VERSION_MAJOR)
#define OSSL_PACKAGE		"libssl3"	/* Debian's, for both */
/* OSSL_FUNCS's first argument, pasted: the index of the library in dl[]. */
#define OSSL_LIB_CRYPTO		0
#define OSSL_LIB_SSL		1

struct ossl_api	 ossl_api;	/* see ossl.h: NULLs until loaded */

static pthread_once_t	 ossl_once = PTHREAD_ONCE_INIT;
static int		 ossl_status = MSYNC_ERR_INTERNAL; /* of ossl_init */
static char		 ossl_err[512];	/* why ossl_init failed */

/*
 * Opens one library by name (RTLD_NOW: a library missing a symbol it
 * needs fails here, not at a call).  Returns the handle, or NULL with
 * ossl_err set.
 */
static void *
ossl_open(const char *what, const char *name)
{
	void	*dl;

	if ((dl = dlopen(name, RTLD_NOW | RTLD_LOCAL)) == NULL)
		snprintf(ossl_err, sizeof(ossl_err), "TLS needs OpenSSL's %s, "
		    "which cannot be loaded (%s): install %s", what, dlerror(),
		    OSSL_PACKAGE);
	return dl;
}

/*
 * pthread_once's body: loads both libraries and fills ossl_api, or says
 * why not in ossl_err.  Sets ossl_status.
 */
static void
ossl_init(void)
{
	const char	*sslname, *miss = NULL, *where = NULL;
	void		*dl[2];	/* OSSL_LIB_CRYPTO, OSSL_LIB_SSL */

	if ((sslname = getenv("MSYNC_TEST_LIBSSL")) == NULL)
		sslname = LIBSSL_SONAME;
	ossl_status = MSYNC_ERR_UNREACHABLE;
	if ((dl[OSSL_LIB_CRYPTO] = ossl_open("libcrypto",
	    LIBCRYPTO_SONAME)) == NULL ||
	    (dl[OSSL_LIB_SSL] = ossl_open("libssl", sslname)) == NULL)
		return;
	/*
	 * A cast, as POSIX allows: dlsym's void * is a function's address.
	 * The table is filled whole before anyone reads it: pthread_once
	 * makes it visible to every thread that called ossl_load.
	 */
#define OSSL_LOOKUP(lib, f) \
	if (miss == NULL && (ossl_api.f = \
	    (__typeof__(ossl_api.f))dlsym(dl[OSSL_LIB_##lib], #f)) == NULL) { \
		miss = #f; \
		where = OSSL_LIB_##lib == OSSL_LIB_CRYPTO ? \
		    LIBCRYPTO_SONAME : sslname; \
	}
	OSSL_FUNCS(OSSL_LOOKUP)
#undef OSSL_LOOKUP
	if (miss != NULL) {
		snprintf(ossl_err, sizeof(ossl_err), "TLS needs OpenSSL %d, "
		    "but the library loaded (%s) has no %s: install %s",
		    OPENSSL_VERSION_MAJOR, where, miss, OSSL_PACKAGE);
		/* No half-filled table: every name stays unusable. */
		memset(&ossl_api, 0, sizeof(ossl_api));
		return;
	}
	ossl_status = 0;
}

int
ossl_load(char **why)
{
	if (pthread_once(&ossl_once, ossl_init) != 0)
		return MSYNC_ERR_INTERNAL;
	if (ossl_status != 0)
		msync_why(why, "%s", ossl_err);
	return ossl_status;
}
