/*
 * chan.h — a full-duplex record channel over a pair of file descriptors:
 * the handshake line, record framing, per-direction LZ4 streaming, byte
 * counters and an optional bandwidth cap.  The brain never reads or
 * writes the peer fds itself.
 *
 * Writes are queued in memory and flushed without blocking, so both
 * brains can send at once without deadlock: the brain polls with
 * chan_wait, then calls chan_flush_some and chan_fill.
 *
 * One thread uses a channel; with a timeout set, the channel's own
 * keepalive thread shares it under a lock that every function takes.
 *
 * All memory belongs to the caller unless stated otherwise.
 */
#ifndef CHAN_H
#define CHAN_H

#include <stddef.h>
#include <stdint.h>

struct chan;

/*
 * A record's header on the wire: type u8, length u32, the payload's
 * check u32, the header's check u32 (see chan_frame_hdr).
 */
#define CHAN_HDR_LEN	13

struct chan_stats {
	uint64_t	 raw_out;	/* record bytes queued, before compression */
	uint64_t	 wire_out;	/* bytes written to the fd */
	uint64_t	 raw_in;	/* record bytes received, after decompression */
	uint64_t	 wire_in;	/* bytes read from the fd */
};

/* Takes ownership of neither fd; rfd and wfd may be equal. */
int	 chan_new(int rfd, int wfd, struct chan **out);
void	 chan_free(struct chan *);

/*
 * Sends our handshake line and reads the peer's (blocking, bounded by
 * PROTO_HANDSHAKE_MAX bytes and timeout_ms).  Agrees on the highest
 * common version (MSYNC_ERR_VERSION, with both ranges in *why, when there
 * is none) and turns on LZ4 in both directions when both lines offer it
 * and want_compress is set on either side that offers.  *why, if set, is
 * owned by the caller.
 */
int	 chan_handshake(struct chan *, int want_compress, int timeout_ms,
	    unsigned *version, int *compressed, char **why);

/*
 * Fills hdr for record number seq (counted from 0 in each direction
 * after the handshake) of the given type and payload.  chan_put does
 * this; tests use it to write a peer's stream by hand.
 */
void	 chan_frame_hdr(uint8_t hdr[CHAN_HDR_LEN], uint64_t seq,
	    uint8_t type, const void *payload, size_t len);

/* Queues one record (payload copied).  MSYNC_ERR_TOOBIG over its max. */
int	 chan_put(struct chan *, uint8_t type, const void *payload,
	    size_t len);
/* Bytes queued but not yet written to the fd. */
size_t	 chan_pending(const struct chan *);
/* Writes what the fd takes now; 0, or MSYNC_ERR_IO / PEER_EOF. */
int	 chan_flush_some(struct chan *);
/* Writes everything queued, waiting as needed (also draining input). */
int	 chan_flush(struct chan *);
/*
 * Reads what the fd has now (non-blocking) into the input buffer.
 * MSYNC_ERR_PEER_EOF once the peer closed and nothing is buffered.
 */
int	 chan_fill(struct chan *);
/*
 * The next complete record: *type and a borrowed view of its payload,
 * valid until the next chan_get or chan_fill.  MSYNC_ERR_INCOMPLETE when
 * more bytes are needed; MSYNC_ERR_PROTO for an unknown type or a length
 * over proto_max_len (checked before any allocation or wait).
 */
int	 chan_get(struct chan *, uint8_t *type, const uint8_t **payload,
	    size_t *len);
/*
 * Waits until the fd is readable, or writable while output is pending,
 * or timeout_ms passes (-1 = forever).  Returns 0, MSYNC_ERR_IO, or
 * MSYNC_ERR_TIMEOUT (see chan_set_timeout).
 */
int	 chan_wait(struct chan *, int timeout_ms);
/* Reads records until one arrives (blocking); same results as chan_get. */
int	 chan_get_wait(struct chan *, uint8_t *type, const uint8_t **payload,
	    size_t *len);
/*
 * Turns on the idle timeout (after the handshake; idle_s 0 leaves it
 * off): a wait on the peer (chan_wait, chan_get_wait, chan_flush) that
 * sees no byte go either way for idle_s seconds fails with
 * MSYNC_ERR_TIMEOUT, after an error naming who (e.g. "B (the server)")
 * as the side that went quiet; the channel then fails for good.  Time
 * the caller spends away from the channel on its own work does not
 * count.  Also starts a thread that, while the caller is away for more
 * than a quarter of idle_s and nothing is being sent, sends KEEPALIVE
 * records, so the peer's own timeout does not trip on our long local
 * work.  chan_get never returns a KEEPALIVE.  Returns 0 or
 * MSYNC_ERR_NOMEM / MSYNC_ERR_INTERNAL.
 */
int	 chan_set_timeout(struct chan *, int idle_s, const char *who);
/* Caps bytes per second written to the fd; 0 = no cap. */
void	 chan_set_bwlimit(struct chan *, uint64_t bytes_per_sec);
void	 chan_get_stats(const struct chan *, struct chan_stats *);

#endif /* CHAN_H */
