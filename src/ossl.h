/*
 * ossl.h — OpenSSL, loaded (dlopen) only by a run that needs TLS.
 *
 * msync does not link libssl and libcrypto: every start (a local run, the
 * server over ssh, --version) would pay their dynamic linking, about
 * 3 M instructions, for code only TLS uses (the IMAP store's imaps:// and
 * STARTTLS, msyncs:// and the daemon).  ossl_load() loads both libraries
 * by soname and looks up every function msync calls, once per process,
 * into ossl_api; this header then maps each OpenSSL name to its pointer
 * (#define SSL_new (ossl_api.SSL_new)), so the callers keep calling
 * OpenSSL by its names.  OpenSSL's own function-like macros
 * (SSL_set_mode, SSL_CTX_set_min_proto_version, ...) expand to functions
 * of the table too (SSL_ctrl, SSL_CTX_ctrl).
 *
 * The rules for a caller:
 *   - include this header instead of <openssl/...>: it includes every
 *     OpenSSL header msync uses, before its names become macros (an
 *     OpenSSL header included after this one would have its prototypes
 *     mangled: add it here instead);
 *   - call ossl_load() before the first OpenSSL name on every path: the
 *     pointers are NULL until it succeeds;
 *   - a function called for the first time goes into OSSL_FUNCS and gets
 *     its #define below (the build fails otherwise: a name without a
 *     #define is an undefined reference, since nothing links OpenSSL).
 */
#ifndef OSSL_H
#define OSSL_H

#include <openssl/opensslv.h>

#if !defined(OPENSSL_VERSION_MAJOR) || OPENSSL_VERSION_MAJOR != 3
#error "msync loads OpenSSL 3 by soname (libssl.so.3): these headers are another version"
#endif

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/*
 * Every OpenSSL function msync calls: X(CRYPTO, f) for libcrypto's,
 * X(SSL, f) for libssl's.
 */
#define OSSL_FUNCS(X) \
	X(CRYPTO, CRYPTO_memcmp) \
	X(CRYPTO, ERR_clear_error) \
	X(CRYPTO, ERR_error_string) \
	X(CRYPTO, ERR_error_string_n) \
	X(CRYPTO, ERR_get_error) \
	X(CRYPTO, ERR_peek_error) \
	X(CRYPTO, EVP_Digest) \
	X(CRYPTO, EVP_sha256) \
	X(CRYPTO, X509_NAME_get_text_by_NID) \
	X(CRYPTO, X509_VERIFY_PARAM_set1_ip_asc) \
	X(CRYPTO, X509_VERIFY_PARAM_set_hostflags) \
	X(CRYPTO, X509_digest) \
	X(CRYPTO, X509_free) \
	X(CRYPTO, X509_get_subject_name) \
	X(CRYPTO, X509_verify_cert_error_string) \
	X(SSL, SSL_CIPHER_get_name) \
	X(SSL, SSL_CTX_check_private_key) \
	X(SSL, SSL_CTX_ctrl) \
	X(SSL, SSL_CTX_free) \
	X(SSL, SSL_CTX_load_verify_locations) \
	X(SSL, SSL_CTX_new) \
	X(SSL, SSL_CTX_set_client_CA_list) \
	X(SSL, SSL_CTX_set_default_verify_paths) \
	X(SSL, SSL_CTX_set_num_tickets) \
	X(SSL, SSL_CTX_set_verify) \
	X(SSL, SSL_CTX_use_PrivateKey_file) \
	X(SSL, SSL_CTX_use_certificate_chain_file) \
	X(SSL, SSL_accept) \
	X(SSL, SSL_connect) \
	X(SSL, SSL_ctrl) \
	X(SSL, SSL_free) \
	X(SSL, SSL_get0_param) \
	X(SSL, SSL_get1_peer_certificate) \
	X(SSL, SSL_get_current_cipher) \
	X(SSL, SSL_get_error) \
	X(SSL, SSL_get_fd) \
	X(SSL, SSL_get_verify_result) \
	X(SSL, SSL_get_version) \
	X(SSL, SSL_has_pending) \
	X(SSL, SSL_load_client_CA_file) \
	X(SSL, SSL_new) \
	X(SSL, SSL_pending) \
	X(SSL, SSL_read) \
	X(SSL, SSL_read_ex) \
	X(SSL, SSL_set1_host) \
	X(SSL, SSL_set_fd) \
	X(SSL, SSL_set_read_ahead) \
	X(SSL, SSL_shutdown) \
	X(SSL, SSL_write) \
	X(SSL, SSL_write_ex) \
	X(SSL, TLS_client_method) \
	X(SSL, TLS_server_method)

/*
 * The functions of OSSL_FUNCS, each a pointer of its prototype's type;
 * all NULL until ossl_load() succeeds, then set once and never changed.
 */
struct ossl_api {
#define OSSL_MEMBER(lib, f)	__typeof__(f) *f;
	OSSL_FUNCS(OSSL_MEMBER)
#undef OSSL_MEMBER
};

extern struct ossl_api ossl_api;

/*
 * Loads libcrypto and libssl (OpenSSL 3) and fills ossl_api, once per
 * process (thread-safe; a fork inherits the result); the libraries stay
 * loaded.  On failure *why (owned by the caller; left alone if already
 * set, as msync_why) says which library or function is missing and what
 * to install, and every later call fails the same way.
 * Returns 0, MSYNC_ERR_UNREACHABLE (exit 69) when a library or a function
 * is missing, or MSYNC_ERR_INTERNAL.
 */
int	 ossl_load(char **why);

/* The OpenSSL names, mapped to the table (see the top of this file). */
#ifndef OSSL_NO_NAMES
#define CRYPTO_memcmp (ossl_api.CRYPTO_memcmp)
#define ERR_clear_error (ossl_api.ERR_clear_error)
#define ERR_error_string (ossl_api.ERR_error_string)
#define ERR_error_string_n (ossl_api.ERR_error_string_n)
#define ERR_get_error (ossl_api.ERR_get_error)
#define ERR_peek_error (ossl_api.ERR_peek_error)
#define EVP_Digest (ossl_api.EVP_Digest)
#define EVP_sha256 (ossl_api.EVP_sha256)
#define X509_NAME_get_text_by_NID (ossl_api.X509_NAME_get_text_by_NID)
#define X509_VERIFY_PARAM_set1_ip_asc (ossl_api.X509_VERIFY_PARAM_set1_ip_asc)
#define X509_VERIFY_PARAM_set_hostflags \
	(ossl_api.X509_VERIFY_PARAM_set_hostflags)
#define X509_digest (ossl_api.X509_digest)
#define X509_free (ossl_api.X509_free)
#define X509_get_subject_name (ossl_api.X509_get_subject_name)
#define X509_verify_cert_error_string \
	(ossl_api.X509_verify_cert_error_string)
#define SSL_CIPHER_get_name (ossl_api.SSL_CIPHER_get_name)
#define SSL_CTX_check_private_key (ossl_api.SSL_CTX_check_private_key)
#define SSL_CTX_ctrl (ossl_api.SSL_CTX_ctrl)
#define SSL_CTX_free (ossl_api.SSL_CTX_free)
#define SSL_CTX_load_verify_locations \
	(ossl_api.SSL_CTX_load_verify_locations)
#define SSL_CTX_new (ossl_api.SSL_CTX_new)
#define SSL_CTX_set_client_CA_list (ossl_api.SSL_CTX_set_client_CA_list)
#define SSL_CTX_set_default_verify_paths \
	(ossl_api.SSL_CTX_set_default_verify_paths)
#define SSL_CTX_set_num_tickets (ossl_api.SSL_CTX_set_num_tickets)
#define SSL_CTX_set_verify (ossl_api.SSL_CTX_set_verify)
#define SSL_CTX_use_PrivateKey_file (ossl_api.SSL_CTX_use_PrivateKey_file)
#define SSL_CTX_use_certificate_chain_file \
	(ossl_api.SSL_CTX_use_certificate_chain_file)
#define SSL_accept (ossl_api.SSL_accept)
#define SSL_connect (ossl_api.SSL_connect)
#define SSL_ctrl (ossl_api.SSL_ctrl)
#define SSL_free (ossl_api.SSL_free)
#define SSL_get0_param (ossl_api.SSL_get0_param)
#define SSL_get1_peer_certificate (ossl_api.SSL_get1_peer_certificate)
#define SSL_get_current_cipher (ossl_api.SSL_get_current_cipher)
#define SSL_get_error (ossl_api.SSL_get_error)
#define SSL_get_fd (ossl_api.SSL_get_fd)
#define SSL_get_verify_result (ossl_api.SSL_get_verify_result)
#define SSL_get_version (ossl_api.SSL_get_version)
#define SSL_has_pending (ossl_api.SSL_has_pending)
#define SSL_load_client_CA_file (ossl_api.SSL_load_client_CA_file)
#define SSL_new (ossl_api.SSL_new)
#define SSL_pending (ossl_api.SSL_pending)
#define SSL_read (ossl_api.SSL_read)
#define SSL_read_ex (ossl_api.SSL_read_ex)
#define SSL_set1_host (ossl_api.SSL_set1_host)
#define SSL_set_fd (ossl_api.SSL_set_fd)
#define SSL_set_read_ahead (ossl_api.SSL_set_read_ahead)
#define SSL_shutdown (ossl_api.SSL_shutdown)
#define SSL_write (ossl_api.SSL_write)
#define SSL_write_ex (ossl_api.SSL_write_ex)
#define TLS_client_method (ossl_api.TLS_client_method)
#define TLS_server_method (ossl_api.TLS_server_method)
#endif /* OSSL_NO_NAMES */

#endif /* OSSL_H */
