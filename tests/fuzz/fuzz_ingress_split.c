/* Fuzzes the batch splitter (split.c) over strictly parsed bodies: bounds, each element's
 * message id and event type, and the element's serialisation. Input: the message id pointer
 * on the first line, the body after it (the event type pointer is "/event"). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "split.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t pl = nl ? (size_t)(nl - data) : 0;
    if (pl > 512) return 0;
    char ptr[513];
    memcpy(ptr, data, pl);
    ptr[pl] = '\0';
    if (strlen(ptr) != pl || !ing_pointer_valid(ptr)) return 0;
    const unsigned char *body = nl ? nl + 1 : data;
    size_t blen = size - (size_t)(body - data);
    unsigned char *copy = malloc(blen ? blen : 1);
    memcpy(copy, body, blen);
    json_t *root = NULL;
    if (ing_json_parse(copy, blen, &root) == ING_EX_OK) {
        ing_field_src_t mid = {ptr, NULL, ING_MAX_MESSAGE_ID};
        ing_field_src_t type = {"/event", NULL, ING_MAX_EVENT_TYPE};
        ing_split_elem_t *e = NULL;
        size_t n = 0, bad = 0;
        ing_ex_result_t field = ING_EX_OK;
        ing_split_result_t r = ing_split(root, &mid, &type, NULL, &e, &n, &field, &bad);
        if (r == ING_SPLIT_OK) {
            if (n == 0 || n > ING_SPLIT_MAX || n != json_array_size(root)) abort();
            for (size_t i = 0; i < n; i++) {
                /* Each element's text parses back to the element. */
                json_t *back = json_loadb(e[i].json, e[i].len, JSON_DECODE_ANY, NULL);
                if (back == NULL || !json_equal(back, json_array_get(root, i))) abort();
                json_decref(back);
                if (e[i].message_id[0] == '\0' || e[i].event_type[0] == '\0') abort();
            }
        } else if (e != NULL || n != 0 || ing_split_code(r, field) == NULL) {
            abort();
        }
        ing_split_free(e, n);
        json_decref(root);
    }
    free(copy);
    return 0;
}
