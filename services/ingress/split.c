/* The splitter of JSON-array bodies: bounds first, then each element's fields, then its text. */
#include "split.h"

#include <stdlib.h>
#include <string.h>

#include "hl/log.h"
#include "hl/util.h"

void ing_split_free(ing_split_elem_t *e, size_t n)
{
    if (e == NULL) return;
    for (size_t i = 0; i < n; i++) free(e[i].json);
    free(e);
}

/* Reads the fields of element i and serialises it; ING_EX_OK or the field's error. */
static ing_ex_result_t split_one(json_t *el, const ing_field_src_t *mid,
                                 const ing_field_src_t *type, const hl_sig_headers_t *h,
                                 ing_split_elem_t *e)
{
    ing_ex_result_t x = ing_field_get(mid, el, h, e->message_id, sizeof(e->message_id));
    if (x == ING_EX_OK) x = ing_field_get(type, el, h, e->event_type, sizeof(e->event_type));
    if (x != ING_EX_OK) return x;
    e->json = json_dumps(el, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
    if (e->json == NULL) {
        hl_error("out of memory: cannot serialise a batch element");
        abort();
    }
    e->len = strlen(e->json);
    return ING_EX_OK;
}

ing_split_result_t ing_split(json_t *root, const ing_field_src_t *mid, const ing_field_src_t *type,
                             const hl_sig_headers_t *h, ing_split_elem_t **out, size_t *n,
                             ing_ex_result_t *field, size_t *bad)
{
    *out = NULL;
    *n = 0;
    if (!json_is_array(root)) return ING_SPLIT_NOT_ARRAY;
    size_t count = json_array_size(root);
    if (count == 0) return ING_SPLIT_EMPTY;
    if (count > ING_SPLIT_MAX) return ING_SPLIT_TOO_MANY;
    ing_split_elem_t *e = hl_xcalloc(count, sizeof(*e));
    for (size_t i = 0; i < count; i++) {
        ing_ex_result_t x = split_one(json_array_get(root, i), mid, type, h, &e[i]);
        if (x != ING_EX_OK) {
            ing_split_free(e, i);
            *field = x;
            *bad = i;
            return ING_SPLIT_FIELD;
        }
    }
    *out = e;
    *n = count;
    return ING_SPLIT_OK;
}

const char *ing_split_code(ing_split_result_t r, ing_ex_result_t field)
{
    switch (r) {
    case ING_SPLIT_OK: return NULL;
    case ING_SPLIT_NOT_ARRAY: return "not_an_array";
    case ING_SPLIT_EMPTY: return "empty_batch";
    case ING_SPLIT_TOO_MANY: return "too_many_elements";
    default: return ing_ex_code(field);
    }
}
