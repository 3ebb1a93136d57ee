/* Queries over a list of text values too long for one statement: the list goes as a text[]
 * literal (one parameter, however many values) in chunks, so that neither the statement nor
 * its answer grows without bound. */
#include "hl/pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl/util.h"

char *hl_pg_text_array(const char *const *items, size_t n)
{
    size_t cap = 3;
    for (size_t i = 0; i < n; i++) cap += 2 * strlen(items[i]) + 3;
    char *s = hl_xmalloc(cap), *p = s;
    *p++ = '{';
    for (size_t i = 0; i < n; i++) {
        if (i) *p++ = ',';
        *p++ = '"';
        for (const char *c = items[i]; *c; c++) {
            if (*c == '"' || *c == '\\') *p++ = '\\';
            *p++ = *c;
        }
        *p++ = '"';
    }
    *p++ = '}';
    *p = '\0';
    return s;
}

PGresult *hl_pg_select(PGconn *c, const char *sql, int n, const char *const *params,
                       const char *what, char *errbuf, size_t errcap)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) == PGRES_TUPLES_OK) return r;
    (void)hl_pg_error(c, r, what, errbuf, errcap);
    PQclear(r);
    return NULL;
}

int hl_pg_query_chunked(PGconn *c, const hl_pg_chunked_t *q, const char *const *items, size_t n,
                        hl_pg_chunk_fn fn, void *arg, char *errbuf, size_t errcap)
{
    if (q->nparams < 1 || q->nparams > HL_PG_CHUNKED_MAX_PARAMS || q->chunk == 0) {
        snprintf(errbuf, errcap, "%s: bad chunked query", q->what ? q->what : "query");
        return HL_EINVAL;
    }
    const char *params[HL_PG_CHUNKED_MAX_PARAMS];
    for (int i = 0; i + 1 < q->nparams; i++) params[i] = q->params[i];
    for (size_t off = 0; off < n; off += q->chunk) {
        size_t k = n - off < q->chunk ? n - off : q->chunk;
        char *arr = hl_pg_text_array(items + off, k);
        params[q->nparams - 1] = arr;
        PGresult *r = hl_pg_select(c, q->sql, q->nparams, params, q->what, errbuf, errcap);
        free(arr);
        if (!r) return HL_EPG;
        int rc = fn(r, off, k, arg);
        PQclear(r);
        if (rc != 0) return rc;
    }
    return 0;
}
