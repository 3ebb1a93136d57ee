/* Fuzzes the ingress's body validation and field extraction (extract.c): the depth pre-scan,
 * strict JSON parsing, RFC 6901 pointers (hl/jsonptr.h) and the field rules, and holds the
 * one-pass reading the answer path uses (ing_extract_fields, hl/jsonscan.h) to the one through
 * jansson: any difference in what is refused or read aborts. Input: a pointer on the first
 * line, the body after it; the event type is read at "/type". */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "extract.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t pl = nl ? (size_t)(nl - data) : 0;
    if (pl > 512) return 0;
    char ptr[513];
    memcpy(ptr, data, pl);
    ptr[pl] = '\0';
    const unsigned char *body = nl ? nl + 1 : data;
    size_t blen = size - (size_t)(body - data);
    /* A heap copy of exactly blen bytes so ASan sees any read past the body. */
    unsigned char *copy = malloc(blen ? blen : 1);
    memcpy(copy, body, blen);
    (void)ing_json_depth_ok(copy, blen, ING_JSON_MAX_DEPTH);
    json_t *root = NULL;
    ing_ex_result_t parsed = ing_json_parse(copy, blen, &root);
    if (parsed == ING_EX_OK) {
        if (strlen(ptr) == pl && ing_pointer_valid(ptr)) {
            (void)hl_jsonptr_get(root, ptr);
            ing_field_src_t src = {ptr, NULL, ING_MAX_MESSAGE_ID};
            char out[ING_MAX_MESSAGE_ID + 1];
            ing_ex_result_t r = ing_field_get(&src, root, NULL, out, sizeof out);
            if (r == ING_EX_OK && (strlen(out) == 0 || strlen(out) > ING_MAX_MESSAGE_ID)) abort();
        }
    }
    if (strlen(ptr) == pl && ing_pointer_valid(ptr)) {
        /* The two readings: the message id at ptr, then the event type at /type. */
        ing_field_src_t mid = {ptr, NULL, ING_MAX_MESSAGE_ID};
        ing_field_src_t type = {"/type", NULL, ING_MAX_EVENT_TYPE};
        char m1[ING_MAX_MESSAGE_ID + 1] = "", t1[ING_MAX_EVENT_TYPE + 1] = "";
        char m2[ING_MAX_MESSAGE_ID + 1] = "", t2[ING_MAX_EVENT_TYPE + 1] = "";
        ing_ex_result_t want = parsed;
        if (want == ING_EX_OK) want = ing_field_get(&mid, root, NULL, m1, sizeof m1);
        if (want == ING_EX_OK) want = ing_field_get(&type, root, NULL, t1, sizeof t1);
        ing_ex_result_t got =
            ing_extract_fields(copy, blen, &mid, &type, NULL, m2, sizeof m2, t2, sizeof t2);
        if (got != want) abort();
        if (got == ING_EX_OK && (strcmp(m1, m2) != 0 || strcmp(t1, t2) != 0)) abort();
    }
    json_decref(root);
    free(copy);
    return 0;
}
