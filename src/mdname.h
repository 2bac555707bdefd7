/*
 * mdname.h — Maildir message file names: "BASE" in new/, "BASE:2,INFO" in
 * cur/, INFO being the sorted flag letters (DFPRST), keyword letters
 * (a..z, named in the folder's dovecot-keywords file) and anything else
 * another program put there (kept as is).  BASE may carry ",S=<size>" and
 * ",W=<vsize>" fields.  The base name is a message file's identity: it
 * does not change when the flags do.
 *
 * All memory belongs to the caller unless stated otherwise.
 */
#ifndef MDNAME_H
#define MDNAME_H

#include <stddef.h>
#include <stdint.h>

#define MDNAME_MAX	255	/* bytes in one file name (NAME_MAX) */

/* What a file name says. */
struct mdname {
	size_t		 base_len;	/* bytes before the first ':' */
	int		 has_info;	/* ":2," follows the base */
	uint8_t		 flags;		/* FLAG_* letters in the info */
	uint32_t	 kwbits;	/* bit n: keyword letter 'a' + n */
	int		 has_size;	/* ",S=" field present */
	uint64_t	 size;		/* its value */
	int		 has_vsize;	/* ",W=" field present */
	uint64_t	 vsize;		/* its value */
};

/*
 * Parses file name (no directory part) into *out.  Refuses (returns
 * MSYNC_ERR_BADNAME) what is not a Maildir message name: empty, longer
 * than MDNAME_MAX, starting with '.', or containing '/', a control
 * character or a byte >= 0x7f.  Returns 0 on success.
 */
int	 mdname_parse(const char *name, struct mdname *out);

/*
 * Checks name[0..len) (no NUL needed) as mdname_parse would, without
 * parsing its fields: for names read from an index, whose fields are
 * not needed then.  A NUL in the name is refused.
 * Returns 0 or MSYNC_ERR_BADNAME.
 */
int	 mdname_check(const char *name, size_t len);

/*
 * The flags and keyword letters of a name mdname_parse accepted before
 * (an index entry's): the same *flags and *kwbits it gives, without
 * checking the name again.
 */
void	 mdname_info(const char *name, uint8_t *flags, uint32_t *kwbits);

/*
 * Builds into out (outsz bytes) the cur/ name for file name old with
 * flags and keyword letters kwbits: the base of old, ":2,", then the
 * sorted letters, plus any other info characters old carried.  Returns
 * 0, MSYNC_ERR_BADNAME (old is not a Maildir name) or MSYNC_ERR_TOOBIG.
 */
int	 mdname_build(const char *old, uint8_t flags, uint32_t kwbits,
	    char *out, size_t outsz);

/* Writes the flag letters of flags into out (7 bytes), NUL-terminated. */
void	 mdname_flagstr(uint8_t flags, char out[7]);

#endif /* MDNAME_H */
