/* The lineage hash chain definition (see chain.h and README.md "Hash chain"). */
#include "chain.h"

#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "hl/codec.h"
#include "hl/util.h"

static int update_str(EVP_MD_CTX *md, const char *s, size_t n, int newline)
{
    if (EVP_DigestUpdate(md, s, n) != 1) return HL_EIO;
    if (newline && EVP_DigestUpdate(md, "\n", 1) != 1) return HL_EIO;
    return 0;
}

static int update_i64(EVP_MD_CTX *md, int64_t v)
{
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%" PRId64, v);
    return update_str(md, buf, (size_t)n, 1);
}

int aud_chain_hash(const unsigned char prev[AUD_CHAIN_HASH_LEN], const aud_chain_row_t *row,
                   unsigned char out[AUD_CHAIN_HASH_LEN])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned int len = 0;
    int rc = HL_EIO;
    if (!md) return HL_EIO;
    if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) goto out;
    if (EVP_DigestUpdate(md, prev, AUD_CHAIN_HASH_LEN) != 1) goto out;
    if (update_str(md, AUD_CHAIN_TAG, strlen(AUD_CHAIN_TAG), 1) || update_i64(md, row->chain) ||
        update_i64(md, row->seq) || update_i64(md, row->lineage_offset) ||
        update_str(md, row->request_id, strlen(row->request_id), 1) ||
        update_str(md, row->stage, strlen(row->stage), 1) || update_i64(md, row->ts_us) ||
        update_str(md, row->record, row->record_len, 0))
        goto out;
    if (EVP_DigestFinal_ex(md, out, &len) != 1 || len != AUD_CHAIN_HASH_LEN) goto out;
    rc = 0;
out:
    EVP_MD_CTX_free(md);
    return rc;
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
