/*
 * mboxfmt.h — the mbox file format, without files: reading the messages
 * of an mbox (mboxo, mboxrd, mboxcl, mboxcl2) out of a byte source, and
 * writing one message as mboxrd.  src/store/mbox.c does the files, the
 * locks and the index; this module only turns bytes into messages and
 * back, so it can be fuzzed (tests/fuzz/fuzz_mbox.c).  The rules are in
 * man/msync.5 ("mbox"):
 *
 *  - a message starts at a line "From " that is the first line of the
 *    input or follows an empty line; the empty line before it is the
 *    separator, not content;
 *  - Content-Length is trusted only where it lands exactly on the end of
 *    the input or on a "From " line (after at most two newlines), as
 *    mutt does; a trusted body is taken as is (mboxcl2);
 *  - otherwise, in mboxrd (the default) a line ">From ", ">>From ", ...
 *    loses one '>'; in mboxo nothing is unquoted;
 *  - the bookkeeping headers Status, X-Status, X-Keywords, X-UID,
 *    X-IMAP, X-IMAPbase, Content-Length and msync's X-Msync-Headerless
 *    are not content: they give
 *    the flags and are left out of the message (so its GUID does not
 *    depend on them); a message's own header of such a name is written
 *    as "X-Msync-Kept-Name" and read back without the prefix;
 *  - a first message carrying X-IMAP, or the subject "DON'T DELETE THIS
 *    MESSAGE -- FOLDER INTERNAL DATA", is the folder-data pseudo-message
 *    of UW-IMAP and Dovecot: listed as pseudo, never a message (Dovecot
 *    without it keeps X-IMAPbase in the first real message: bookkeeping,
 *    left out like the other such headers).
 *
 * Memory: a struct mboxfmt is owned by its creator; the source and the
 * sink are borrowed.  Functions return 0 or a negative MSYNC_ERR_*.
 */
#ifndef MBOXFMT_H
#define MBOXFMT_H

#include <stddef.h>
#include <stdint.h>

#include "msync.h"

#define MBOXFMT_MBOXRD	0	/* unquote ">+From " (msync writes this) */
#define MBOXFMT_MBOXO	1	/* leave ">From " alone */

/*
 * Where the bytes come from: read up to n bytes at offset off into buf,
 * *got 0 only at the end.  Returns 0 or MSYNC_ERR_IO.
 */
struct mboxfmt_src {
	int	(*pread)(void *arg, void *buf, size_t n, uint64_t off,
		    size_t *got);
	void	*arg;
};

/* Where content goes; may be NULL. */
typedef void (*mboxfmt_sink)(void *arg, const void *p, size_t n);

/* What one message turned out to be. */
struct mboxfmt_msg {
	uint64_t	 off;		/* its "From " line */
	uint64_t	 next;		/* the next "From " line, or the end */
	uint64_t	 size;		/* content bytes */
	int64_t		 date;		/* from the "From " line; -1 unknown */
	uint8_t		 flags;		/* FLAG_* from Status / X-Status */
	char		 kw[MSYNC_KWSTR_MAX + 1]; /* sorted names, "" none */
	int		 pseudo;	/* the folder-data pseudo-message */
	int		 cl;		/* its Content-Length was trusted */
	int		 nul;		/* it holds NUL bytes */
};

struct mboxfmt;

/*
 * A reader of src between start and limit (UINT64_MAX: to the end).
 * format is MBOXFMT_MBOXRD or MBOXFMT_MBOXO.
 */
int	 mboxfmt_new(const struct mboxfmt_src *src, int format,
	    uint64_t start, uint64_t limit, struct mboxfmt **out);
void	 mboxfmt_free(struct mboxfmt *);
/*
 * Starts the next message.  Returns 0, 1 at the end of the input, or
 * MSYNC_ERR_BADDATA when the input there does not start with "From "
 * (not an mbox).
 */
int	 mboxfmt_begin(struct mboxfmt *, struct mboxfmt_msg *);
/*
 * Reads one piece of the message begun, handing its content to sink.
 * Returns 0 (call again), 1 (the message is complete: *m filled in,
 * the reader is at the next one) or a negative MSYNC_ERR_*.
 */
int	 mboxfmt_step(struct mboxfmt *, struct mboxfmt_msg *m,
	    mboxfmt_sink sink, void *arg);

/*
 * Writing.  A growable output the writers append to (owned by the
 * caller; free p).
 */
struct mboxfmt_out {
	uint8_t	*p;
	size_t	 len;
	size_t	 cap;
	int	 failed;	/* out of memory: the rest was dropped */
};
void	 mboxfmt_put(struct mboxfmt_out *, const void *, size_t);

/*
 * The "From " line of a message: sender (an address, or NULL for
 * MAILER-DAEMON) and the received date, as UTC.  Then its bookkeeping
 * headers: the flags and keywords, and clen (>= 0: a Content-Length
 * header, for a message that does not end in a newline).
 */
void	 mboxfmt_from(struct mboxfmt_out *, const char *sender,
	    int64_t date);
void	 mboxfmt_meta(struct mboxfmt_out *, uint8_t flags, const char *kw,
	    int64_t clen);
/*
 * The raw message at off (raw bytes, from its "From " line) with new
 * flags: its Status, X-Status and X-Keywords headers replaced, every
 * other byte as it was, handed to sink.
 */
int	 mboxfmt_reflag(const struct mboxfmt_src *src, uint64_t off,
	    uint64_t raw, uint8_t flags, const char *kw, mboxfmt_sink sink,
	    void *arg);
/*
 * Writing one message, streaming: begin writes its "From " line and
 * keeps its bookkeeping headers (as mboxfmt_meta) for the end of the
 * header block; then the content in pieces of any size; end adds the
 * separator.  Lines ">*From " get one more '>' (mboxrd), unless clen >= 0
 * (a Content-Length body is written as it is); the message's own
 * bookkeeping headers get the X-Msync-Kept- prefix.  headerless (with
 * clen the whole length) is for a message that has neither an empty line
 * nor a final newline: it is written whole as the body of an empty header
 * block marked X-Msync-Headerless, which the reader takes back off.
 */
struct mboxfmt_writer {
	uint8_t		 meta[MSYNC_KWSTR_MAX + 128];
	size_t		 nmeta;
	int		 quote;
	int		 headerless;
	int		 mid;		/* inside a line */
	int		 body;		/* past the header block */
	uint8_t		 hold[128];	/* a line start not yet decided */
	size_t		 nhold;
	int		 last_nl;	/* the content so far ends in '\n' */
	/*
	 * Set after begin: mboxo, for a file read as mboxo.  Only "From "
	 * lines get a '>' (">From " is left alone: an mboxo reader takes
	 * no '>' off); with clen >= 0 nothing is quoted, not even in the
	 * header block.  The caller gives a message with a "From " line a
	 * Content-Length, so that it comes back byte for byte.
	 */
	int		 mboxo;
};
void	 mboxfmt_write_begin(struct mboxfmt_writer *, struct mboxfmt_out *,
	    const char *sender, int64_t date, uint8_t flags, const char *kw,
	    int64_t clen, int headerless);
void	 mboxfmt_write(struct mboxfmt_writer *, struct mboxfmt_out *,
	    const void *, size_t);
void	 mboxfmt_write_end(struct mboxfmt_writer *, struct mboxfmt_out *);

/* 1 if the header line p (len bytes) is an mbox bookkeeping header. */
int	 mboxfmt_is_meta(const void *p, size_t len);
/* The sender of a message: Return-Path, else From; "" if none. */
void	 mboxfmt_sender(const void *head, size_t len, char out[256]);

#endif /* MBOXFMT_H */
