/*
 * fuzz_proto.c — libFuzzer target for everything that reads peer bytes:
 * the record decoders, and the channel (handshake, framing, LZ4).
 *
 * An input that starts with "msync " is a whole peer stream: it is
 * written into a pipe that a struct chan reads (handshake, then records,
 * plain or compressed as the line says), and every record it yields goes
 * to its decoder.  This build (MSYNC_FUZZ) does not compare the records'
 * and LZ4 block headers' checksums, which made-up input cannot match, so
 * that the fuzzer reaches the framing and decoders behind them.  Any other input is a sequence of records (type u8,
 * length u32, payload; the last one may be cut short), each given to its
 * decoder; MSGS and BASE_MSGS also append to one list across records.
 * Seeds: the .bin files in tests/unit/data (written by test_proto and
 * test_chan).
 *
 * Checks beyond the sanitizers: what decodes re-encodes to the same bytes
 * (encodings are canonical); a failed append leaves the list as it was.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE \
 *	-Isrc -Itests/unit tests/fuzz/fuzz_proto.c src/buf.c src/proto.c \
 *	src/lz4s.c src/chan.c src/log.c src/util.c src/names.c \
 *	-llz4 -lxxhash -o fuzz_proto
 *   ./fuzz_proto -max_total_time=60 corpus/ tests/unit/data/
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "chan.h"
#include "msync.h"
#include "proto.h"
#include "state.h"
#include "proto_rt.h"

#define FUZZ_STREAM_MAX	(1024 * 1024)

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* Decodes one payload; aborts if a successful decode is not canonical. */
static void
one_record(uint8_t type, const uint8_t *p, size_t len)
{
	uint8_t	*re = NULL;
	size_t	 relen = 0;

	if (proto_rt(type, p, len, &re, &relen) == 0) {
		if (relen != len || (len > 0 && memcmp(re, p, len) != 0))
			abort();
	}
	free(re);
}

/* Appends MSGS / BASE_MSGS records to lists that live across records. */
static void
append_record(uint8_t type, const uint8_t *p, size_t len,
    struct msglist *ml, struct state_mbox *sm)
{
	size_t	 n;

	if (type == REC_MSGS) {
		n = ml->n;
		if (proto_dec_msgs(p, len, ml) != 0 && ml->n != n)
			abort();
	} else if (type == REC_BASE_MSGS) {
		n = sm->nmsgs;
		if (proto_dec_base_msgs(p, len, sm) != 0 && sm->nmsgs != n)
			abort();
	}
}

static void
records(const uint8_t *data, size_t size)
{
	struct msglist	 ml;
	struct state_mbox sm;
	size_t		 len, i;
	uint8_t		 type;

	memset(&ml, 0, sizeof(ml));
	memset(&sm, 0, sizeof(sm));
	while (size >= 5) {
		type = data[0];
		len = mbuf_be32(data + 1);
		data += 5;
		size -= 5;
		if (len > size)
			len = size;
		one_record(type, data, len);
		append_record(type, data, len, &ml, &sm);
		data += len;
		size -= len;
	}
	msglist_free(&ml);
	for (i = 0; i < sm.nmsgs; i++) {
		free(sm.msgs[i].kw[0]);
		free(sm.msgs[i].kw[1]);
	}
	free(sm.msgs);
}

static void
stream(const uint8_t *data, size_t size)
{
	static int	 devnull = -1;
	struct chan	*c = NULL;
	const uint8_t	*p;
	uint8_t		 type;
	size_t		 len, off;
	unsigned	 version;
	char		*why = NULL;
	ssize_t		 n;
	int		 fds[2], comp;

	if (devnull == -1 && (devnull = open("/dev/null", O_WRONLY)) == -1)
		abort();
	if (pipe(fds) == -1)
		abort();
	if (size > FUZZ_STREAM_MAX)
		size = FUZZ_STREAM_MAX;
	if (size > 65536 && fcntl(fds[1], F_SETPIPE_SZ, (int)size) == -1)
		size = 65536;
	for (off = 0; off < size; off += (size_t)n)
		if ((n = write(fds[1], data + off, size - off)) <= 0)
			abort();
	close(fds[1]);
	if (chan_new(fds[0], devnull, &c) != 0)
		abort();
	if (chan_handshake(c, 0, 1000, &version, &comp, &why) == 0) {
		while (chan_get_wait(c, &type, &p, &len) == 0) {
			if (len > proto_max_len(type))
				abort();
			one_record(type, p, len);
		}
	}
	free(why);
	chan_free(c);
	close(fds[0]);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size >= 7 && memcmp(data, "msync ", 6) == 0)
		stream(data, size);
	else
		records(data, size);
	return 0;
}
