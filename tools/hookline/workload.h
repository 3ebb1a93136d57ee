/* The requests a replay sends: a deterministic synthetic workload built from a seed, or
 * captured requests read from an ndjson file, grouped by message so that each message's
 * events go out in order. */
#ifndef CLI_WORKLOAD_H
#define CLI_WORKLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "hl/error.h"
#include "hl/proto.h"
#include "http_client.h"

#define CLI_WL_MAX_EVENTS_PER_MESSAGE 64
#define CLI_WL_MAX_COUNT 10000000u          /* events in one synthetic workload */
#define CLI_WL_MAX_PAYLOAD (1u << 20)       /* bytes of one synthetic body */
#define CLI_WL_MAX_TOTAL_BYTES (1ull << 30) /* all bodies of one workload together */
#define CLI_WL_MAX_LINE (2u << 20)          /* one ndjson line */
#define CLI_WL_MAX_HEADERS 32               /* captured headers of one request */
#define CLI_WL_MAX_ID HL_MESSAGE_ID_MAX     /* message id bytes (as the ingress limits them) */

/* Outcome of one request, written by the replay thread that owns its message. */
typedef struct {
    int status; /* final HTTP status; 0 = not sent (an earlier event failed), -1 = transport */
    uint16_t attempts;   /* attempts made (1 + retries) */
    int64_t latency_us;  /* from the first attempt's scheduled time to the final answer */
    int64_t answered_us; /* wall clock of the final answer (µs since epoch) */
    char request_id[40]; /* from X-Request-Id or the body, "" when none */
} cli_wl_outcome_t;

typedef struct {
    char *body; /* owned, unless dup_of >= 0 (then it is the original's) */
    size_t body_len;
    char *event_type;           /* owned; "" when the body has none */
    char *delivery_id;          /* owned; webhook-id for standard-webhooks */
    cli_http_header_t *headers; /* captured headers (strings owned), NULL for synthetic */
    size_t nheaders;
    int dup_of; /* index of the request this one repeats, -1 for an original */
    cli_wl_outcome_t out;
} cli_wl_req_t;

typedef struct {
    char *message_id;   /* owned */
    cli_wl_req_t *reqs; /* in sending order */
    size_t nreqs;
} cli_wl_msg_t;

typedef struct {
    cli_wl_msg_t *msgs;
    size_t nmsgs;
    size_t nreqs; /* all requests, duplicates included */
    size_t ndups;
} cli_workload_t;

typedef struct {
    uint64_t seed;
    uint32_t count;              /* events (originals), a multiple of events_per_message is not
                                    required: the last message may be short */
    uint32_t events_per_message; /* 1..CLI_WL_MAX_EVENTS_PER_MESSAGE */
    double duplicate_ratio;      /* 0..1: share of events sent a second time after their 202 */
    uint32_t payload_bytes;      /* target body size (bodies never shrink below their fields) */
    const char *run_id;          /* prefix of every message id, so runs never collide */
} cli_wl_synth_opts_t;

/* Advances *state and returns its next pseudo-random value (splitmix64): the same seed gives
 * the same sequence, so whatever is picked with it can be picked again. */
uint64_t cli_wl_mix64(uint64_t *state);

/* The event type of the i-th event of a message (a fixed order: "processed", "delivered", …). */
const char *cli_wl_event_type(unsigned i, char *buf, size_t cap);

/* Builds a synthetic workload into *w (caller-initialized to zeros). Same options, same bytes.
 * Returns 0, HL_EINVAL or HL_ETOOBIG (over CLI_WL_MAX_* caps) with errbuf filled. */
int cli_wl_synth(const cli_wl_synth_opts_t *o, cli_workload_t *w, char *errbuf,
                 size_t errcap) HL_MUST_CHECK;

typedef struct {
    const char *msg_ptr;    /* JSON pointer of the message id in the body ("/messageId"),
                             * read by the ingress's resolver (hl/jsonptr.h) */
    const char *msg_header; /* or: the captured header holding it (e.g. "webhook-id"); wins */
    const char *type_ptr;   /* JSON pointer of the event type ("/eventType") */
} cli_wl_input_opts_t;

/* Reads captured requests, one JSON object per line:
 *   {"headers": {"Name": "value", …}, "body": "<raw text>" | {…}}
 * Blank lines are skipped. Requests with the same message id keep their file order; a
 * captured webhook-id (or svix-id) header is kept as the delivery id, else the message id is.
 * Returns 0, HL_EIO, HL_EPARSE or HL_ETOOBIG with errbuf naming the line. */
int cli_wl_read_ndjson(const char *path, const cli_wl_input_opts_t *o, cli_workload_t *w,
                       char *errbuf, size_t errcap) HL_MUST_CHECK;

/* Frees everything inside w (not w itself) and zeroes it; safe on a zeroed workload. */
void cli_wl_free(cli_workload_t *w);

#endif
