/*
 * names.h — mailbox names: validation of names from the peer or from disk,
 * IMAP modified UTF-7 (RFC 3501 5.1.3), and the Maildir++ ".A.B" and fs
 * "A/B" folder encodings.  Internal names are UTF-8 with '/' as the
 * hierarchy separator; the root folder is "INBOX".
 *
 * All memory belongs to the caller unless stated otherwise.
 */
#ifndef NAMES_H
#define NAMES_H

#include <stddef.h>

/*
 * 1 if name may be used: valid UTF-8, at most MSYNC_NAME_MAX bytes and
 * MSYNC_NAME_DEPTH levels, no empty component, no leading or trailing '/',
 * no "." or ".." component, no control characters (< 0x20, 0x7f), no NUL
 * (len counts the bytes; an embedded NUL fails).  Else 0.
 */
int	 names_valid(const char *name, size_t len);

/* UTF-8 <-> IMAP modified UTF-7.  *out owned by the caller. */
int	 names_to_mutf7(const char *utf8, char **out);
int	 names_from_mutf7(const char *mutf7, char **out);

/*
 * Internal name -> folder directory relative to the store root:
 * Maildir++: "INBOX" -> "" (the root), "A/B" -> ".A.B" (components in
 * modified UTF-7; a component containing '.' is refused: MSYNC_ERR_BADNAME);
 * fs: "INBOX" -> "" (the root), "A/B" -> "A/B".
 * And back: a directory entry name (Maildir++: ".A.B") -> internal name,
 * MSYNC_ERR_BADNAME for anything that is not a folder name.
 */
int	 names_to_dir(const char *name, int layout, char **out);
int	 names_from_maildirpp(const char *dirent, char **out);

/* Shell-style pattern match for -m/-x ('*' any, '%' any but '/'). */
int	 names_match(const char *pattern, const char *name);

#endif /* NAMES_H */
