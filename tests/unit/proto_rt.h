/*
 * proto_rt.h — for tests and fuzzers: decode a record payload with the
 * decoder of its type, encode the result again, and free everything.
 * Encodings are canonical, so a payload that decodes must re-encode to
 * the same bytes.  Included by tests/unit/test_proto.c and
 * tests/fuzz/fuzz_proto.c.
 */
#ifndef PROTO_RT_H
#define PROTO_RT_H

#include <stdlib.h>
#include <string.h>

#include "msync.h"
#include "proto.h"
#include "state.h"

/*
 * Decodes p[0..len) as a payload of the given type.  If re is not NULL
 * and the decode succeeds, *re (malloc'd, caller frees) and *relen get
 * the re-encoding.  Types without a codec (the empty ones and MSG_DATA)
 * only have their length checked.  Returns the decoder's result.
 */
static int
proto_rt(uint8_t type, const uint8_t *p, size_t len, uint8_t **re,
    size_t *relen)
{
	struct rec_hello	 h;
	struct rec_mbox		 m;
	struct msglist		 ml;
	struct state_mbox	 sm;
	struct rec_msg_begin	 mb;
	struct rec_result	*res = NULL;
	struct rec_done		 d;
	struct msg_change	*chg = NULL;
	size_t			 nchg = 0, capchg = 0;
	struct base_ref		*refs = NULL;
	size_t			 nrefs = 0, caprefs = 0;
	struct fprint_ent	*fps = NULL;
	size_t			 nfps = 0, capfps = 0;
	uint64_t		 dig;
	uint32_t		 u32;
	int32_t			 i32;
	size_t			 n, i;
	char			*text = NULL;
	uint8_t			*x = NULL;
	size_t			 xlen = 0;
	int			 r;

	switch (type) {
	case REC_HELLO:
		if ((r = proto_dec_hello(p, len, &h)) == 0) {
			r = proto_enc_hello(&h, &x, &xlen);
			rec_hello_free(&h);
		}
		break;
	case REC_MBOX:
	case REC_BASE_MBOX:
		if ((r = proto_dec_mbox(p, len, &m)) == 0) {
			r = proto_enc_mbox(&m, &x, &xlen);
			rec_mbox_free(&m);
		}
		break;
	case REC_MSGS:
		memset(&ml, 0, sizeof(ml));
		if ((r = proto_dec_msgs(p, len, &ml)) == 0)
			r = proto_enc_msgs(ml.v, ml.n, &x, &xlen);
		msglist_free(&ml);
		break;
	case REC_MSGS_DELTA:
		if ((r = proto_dec_msgs_delta(p, len, &chg, &nchg,
		    &capchg)) == 0)
			r = proto_enc_msgs_delta(chg, nchg, &x, &xlen);
		msg_changes_free(chg, nchg);
		break;
	case REC_BASE_REFS:
		if ((r = proto_dec_base_refs(p, len, &refs, &nrefs,
		    &caprefs)) == 0)
			r = proto_enc_base_refs(refs, nrefs, NULL, &x, &xlen);
		base_refs_free(refs, nrefs);
		break;
	case REC_FPRINTS:
		if ((r = proto_dec_fprints(p, len, &fps, &nfps,
		    &capfps)) == 0)
			r = proto_enc_fprints(fps, nfps, &x, &xlen);
		free(fps);
		break;
	case REC_BASE_MSGS:
		memset(&sm, 0, sizeof(sm));
		if ((r = proto_dec_base_msgs(p, len, &sm)) == 0)
			r = proto_enc_base_msgs(sm.msgs, sm.nmsgs, &x, &xlen);
		for (i = 0; i < sm.nmsgs; i++) {
			free(sm.msgs[i].kw[0]);
			free(sm.msgs[i].kw[1]);
		}
		free(sm.msgs);
		break;
	case REC_DIGEST:
		if ((r = proto_dec_digest(p, len, &dig, &u32)) == 0)
			r = proto_enc_digest(dig, u32, &x, &xlen);
		break;
	case REC_MSG_BEGIN:
		if ((r = proto_dec_msg_begin(p, len, &mb)) == 0)
			r = proto_enc_msg_begin(&mb, &x, &xlen);
		break;
	case REC_MSG_SKIP:
		if ((r = proto_dec_msg_skip(p, len, &u32, &i32)) == 0)
			r = proto_enc_msg_skip(u32, i32, &x, &xlen);
		break;
	case REC_RESULT:
		if ((r = proto_dec_results(p, len, &res, &n)) == 0)
			r = proto_enc_results(res, n, &x, &xlen);
		free(res);
		break;
	case REC_DONE:
		if ((r = proto_dec_done(p, len, &d)) == 0) {
			r = proto_enc_done(&d, &x, &xlen);
			rec_done_free(&d);
		}
		break;
	case REC_LOG:
	case REC_ERROR:
		if ((r = proto_dec_text(p, len, &i32, &text)) == 0)
			r = proto_enc_text(i32, text, &x, &xlen);
		free(text);
		break;
	default:
		if (type == 0 || type > REC_TYPE_MAX ||
		    len > proto_max_len(type))
			return MSYNC_ERR_PROTO;
		r = 0;
		if (len > 0) {
			if ((x = malloc(len)) == NULL)
				return MSYNC_ERR_NOMEM;
			memcpy(x, p, len);
			xlen = len;
		}
		break;
	}
	if (r == 0 && re != NULL) {
		*re = x;
		*relen = xlen;
		x = NULL;
	}
	free(x);
	return r;
}

#endif /* PROTO_RT_H */
