/* The lineage hash chain definition (see chain.h and README.md "Hash chain"). */
#include "chain.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "hl/codec.h"
#include "hl/sigcontent.h"
#include "hl/util.h"

/* The fields before the record, one per line, as the chain's definition lists them; the
 * implementation of SHA-256 is fetched once (an implicit fetch per hash takes the provider
 * store's lock, twice per request and once per row a verification walks). */
int aud_chain_hash(const unsigned char prev[AUD_CHAIN_HASH_LEN], const aud_chain_row_t *row,
                   unsigned char out[AUD_CHAIN_HASH_LEN])
{
    char head[sizeof AUD_CHAIN_TAG + 3 * 21], ts[22];
    int hn = snprintf(head, sizeof head, AUD_CHAIN_TAG "\n%d\n%" PRId64 "\n%" PRId64 "\n",
                      (int)row->chain, row->seq, row->lineage_offset);
    int tn = snprintf(ts, sizeof ts, "%" PRId64 "\n", row->ts_us);
    if (hn < 0 || (size_t)hn >= sizeof head || tn < 0 || (size_t)tn >= sizeof ts) return HL_EIO;
    const hl_sig_part_t parts[] = {
        {prev, AUD_CHAIN_HASH_LEN},
        {head, (size_t)hn},
        {row->request_id, strlen(row->request_id)},
        {"\n", 1},
        {row->stage, strlen(row->stage)},
        {"\n", 1},
        {ts, (size_t)tn},
        {row->record, row->record_len},
    };
    return hl_sig_sha256_parts(parts, (int)(sizeof parts / sizeof parts[0]), out) == 0 ? 0 : HL_EIO;
}

void aud_chain_hex(const unsigned char h[AUD_CHAIN_HASH_LEN], char out[2 * AUD_CHAIN_HASH_LEN + 1])
{
    hl_hex(out, h, AUD_CHAIN_HASH_LEN);
}

int aud_chain_unhex(const char *hex, unsigned char out[AUD_CHAIN_HASH_LEN])
{
    if (!hex || strlen(hex) != 2 * AUD_CHAIN_HASH_LEN) return HL_EPARSE;
    return hl_hex_decode(hex, 2 * AUD_CHAIN_HASH_LEN, out, AUD_CHAIN_HASH_LEN) == AUD_CHAIN_HASH_LEN
               ? 0
               : HL_EPARSE;
}
