/*
 * guid.h — message identity: the 128-bit XXH3 hash of a message's content
 * with every CRLF folded to LF, so a message stored with CRLF line ends and
 * its LF copy get one GUID.  Streaming, so content of any size hashes in
 * constant memory.
 *
 * All memory belongs to the caller unless stated otherwise.
 */
#ifndef GUID_H
#define GUID_H

#include <stddef.h>

#include "msync.h"

struct guid_ctx;

/* Returns NULL when out of memory. */
struct guid_ctx	*guid_ctx_new(void);
void		 guid_ctx_free(struct guid_ctx *);
/* Feeds content; a CR at the end of one piece pairs with an LF in the next. */
void		 guid_update(struct guid_ctx *, const void *, size_t);
void		 guid_final(struct guid_ctx *, struct guid *out);

/* The GUID of a whole buffer. */
void		 guid_of(const void *, size_t, struct guid *out);
/* The GUID of an open file, read from offset 0.  Returns 0 or MSYNC_ERR_IO. */
int		 guid_of_fd(int fd, struct guid *out, uint64_t *size);

#endif /* GUID_H */
