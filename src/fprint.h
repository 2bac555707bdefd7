/*
 * fprint.h — the header fingerprint that pairs a message already on an
 * IMAP server with the peer's copy of it without reading its body
 * (docs/IMAP.md "A destination that already holds some of the
 * messages").  Pure functions; the store reads the bytes.
 *
 * The fingerprint is the XXH3-128 of
 *
 *	"msync-fp1" NUL message-id NUL date NUL crlf-size
 *
 * message-id and date: the value of the first Message-ID and the first
 * Date field of the header (names case-insensitive), unfolded, every
 * run of white space (SP, TAB, CR, LF) made one space, both ends
 * trimmed; date is empty when there is no Date field.  crlf-size: the
 * message's size in decimal with every line ending counted as CRLF
 * (IMAP's RFC822.SIZE as Dovecot and most servers report it).  A
 * message without a Message-ID, or with an empty one, has no
 * fingerprint: it is never matched, only read.
 *
 * All memory belongs to the caller.
 */
#ifndef FPRINT_H
#define FPRINT_H

#include <sys/types.h>

#include <stddef.h>
#include <stdint.h>

#include "msync.h"

#define FPRINT_HDR_MAX	(64 * 1024)	/* header bytes looked at */
#define FPRINT_FIELD_MAX 998		/* bytes of a value kept (RFC 5322) */

/*
 * The fingerprint of a message whose header (or the lines of it an
 * IMAP server returned for HEADER.FIELDS) is hdr[0..n), which may stop
 * anywhere, and whose CRLF size is crlf_size.  Returns 0, or
 * MSYNC_ERR_NOTFOUND when there is no (non-empty) Message-ID.
 */
int	 fprint_of(const char *hdr, size_t n, uint64_t crlf_size,
	    struct guid *out);

/*
 * Copies the value of the first field called name (case-insensitive)
 * of the header hdr[0..n) into out (max + 1 bytes), normalised as
 * above, cut at max bytes.  Returns its length, or -1 when the field is
 * absent.  The header ends at an empty line or at n.  (The IMAP store
 * also shows a refused message's Message-ID and Subject with it.)
 */
ssize_t	 fprint_field(const char *hdr, size_t n, const char *name,
	    char *out, size_t max);

/*
 * Streaming over a message's content (any line ends): keeps the first
 * FPRINT_HDR_MAX bytes of its header and counts its CRLF size.
 */
struct fprint_ctx {
	char		 hdr[FPRINT_HDR_MAX];
	size_t		 nhdr;
	int		 in_body;	/* the blank line was seen */
	int		 nl;		/* the last byte was LF (line start) */
	int		 cr;		/* the last byte was CR */
	uint64_t	 crlf_size;
};
void	 fprint_init(struct fprint_ctx *);
void	 fprint_update(struct fprint_ctx *, const void *, size_t);
int	 fprint_final(struct fprint_ctx *, struct guid *out);

#endif /* FPRINT_H */
