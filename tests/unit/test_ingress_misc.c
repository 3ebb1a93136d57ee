/* Rate limiter, per-address client accounting and lineage records of the ingress. Its
 * configuration, sources and the README's coverage of every key are in test_ingress_config.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clients.h"
#include "hl/metrics.h"
#include "hl/util.h"
#include "lineage.h"
#include "ratelimit.h"

#define SEC 1000000000LL

static void test_ratelimit(void **state)
{
    ing_ratelimit_t r;
    int retry = 0;
    ing_ratelimit_init(&r, 10, 5);
    int64_t t = 100 * SEC;
    for (int i = 0; i < 5; i++) assert_true(ing_ratelimit_take(&r, t, &retry));
    assert_false(ing_ratelimit_take(&r, t, &retry));
    assert_int_equal(retry, 1);
    /* One interval later exactly one more token. */
    assert_true(ing_ratelimit_take(&r, t + SEC / 10, &retry));
    assert_false(ing_ratelimit_take(&r, t + SEC / 10, &retry));
    /* A long pause refills the burst, never more. */
    t += 60 * SEC;
    for (int i = 0; i < 5; i++) assert_true(ing_ratelimit_take(&r, t, NULL));
    assert_false(ing_ratelimit_take(&r, t, NULL));
    /* Slow rates report a Retry-After of several seconds. */
    ing_ratelimit_init(&r, 1, 1);
    assert_true(ing_ratelimit_take(&r, t, &retry));
    assert_false(ing_ratelimit_take(&r, t, &retry));
    assert_int_equal(retry, 1);
    /* rate 0 means no limit. */
    ing_ratelimit_init(&r, 0, 0);
    for (int i = 0; i < 10000; i++) assert_true(ing_ratelimit_take(&r, t, NULL));
}

static void test_ratelimit_check(void **state)
{
    ing_ratelimit_t r;
    int retry = 0;
    ing_ratelimit_init(&r, 10, 2);
    int64_t t = 100 * SEC;
    assert_true(ing_ratelimit_idle(&r, t));
    for (int i = 0; i < 5; i++) assert_true(ing_ratelimit_check(&r, t, &retry)); /* takes none */
    assert_true(ing_ratelimit_take(&r, t, NULL));
    assert_false(ing_ratelimit_idle(&r, t));
    assert_true(ing_ratelimit_take(&r, t, NULL));
    assert_false(ing_ratelimit_check(&r, t, &retry));
    assert_int_equal(retry, 1);
    assert_true(ing_ratelimit_idle(&r, t + SEC));
}

/* One failed authentication from addr: charged, checked, settled as a failure. False (nothing
 * charged) when refused. */
static bool fail_once(ing_clients_t *c, const char *addr, int64_t now_ns)
{
    ing_auth_charge_t ch;
    if (!ing_clients_auth_take(c, addr, now_ns, NULL, &ch)) return false;
    ing_clients_auth_failed(c, &ch);
    return true;
}

/* One authentic request from addr: charged, checked, given back. False when refused. */
static bool authentic_once(ing_clients_t *c, const char *addr, int64_t now_ns, int *retry)
{
    ing_auth_charge_t ch;
    if (!ing_clients_auth_take(c, addr, now_ns, retry, &ch)) return false;
    ing_clients_auth_refund(c, &ch, now_ns);
    return true;
}

static void test_clients_failed_auth(void **state)
{
    ing_clients_t c;
    int retry = 0;
    int64_t t = 100 * SEC;
    ing_clients_init(&c, 1, 3, 1, 5);
    /* Each address has its own three failures; checking charges nothing. */
    for (int i = 0; i < 3; i++) {
        assert_true(ing_clients_auth_allowed(&c, "10.0.0.1", t, &retry));
        (void)fail_once(&c, "10.0.0.1", t);
    }
    assert_false(ing_clients_auth_allowed(&c, "10.0.0.1", t, &retry));
    assert_int_equal(retry, 1);
    assert_true(ing_clients_auth_allowed(&c, "10.0.0.2", t, &retry));
    (void)fail_once(&c, "10.0.0.2", t);
    (void)fail_once(&c, "10.0.0.2", t);
    /* Five failures in total: every address is now refused, even one never seen. */
    assert_false(ing_clients_auth_allowed(&c, "10.0.0.3", t, &retry));
    /* A second later one token each is back. */
    assert_true(ing_clients_auth_allowed(&c, "10.0.0.1", t + SEC, &retry));
    /* Connections: two per address here; a slot with open connections is never reused. */
    ing_client_t *a = ing_clients_connect(&c, "10.0.0.9", 2, t, NULL);
    ing_client_t *b = ing_clients_connect(&c, "10.0.0.9", 2, t, NULL);
    assert_non_null(a);
    assert_ptr_equal(a, b);
    assert_null(ing_clients_connect(&c, "10.0.0.9", 2, t, NULL));
    assert_non_null(ing_clients_connect(&c, "10.0.0.10", 2, t, NULL));
    ing_clients_disconnect(&c, a);
    assert_ptr_equal(ing_clients_connect(&c, "10.0.0.9", 2, t + 60 * SEC, NULL), a);
    ing_clients_disconnect(&c, NULL); /* NULL-safe */
    ing_clients_deinit(&c);
    /* An authentic request gives back what it was charged: authentic traffic spends nothing. */
    ing_clients_init(&c, 1, 2, 1, 2);
    for (int i = 0; i < 10; i++) {
        assert_true(authentic_once(&c, "10.0.1.1", t, &retry));
        assert_true(authentic_once(&c, "10.0.1.3", t, &retry));
    }
    assert_true(fail_once(&c, "10.0.1.2", t));
    assert_true(fail_once(&c, "10.0.1.2", t));
    assert_false(fail_once(&c, "10.0.1.2", t));
    assert_false(fail_once(&c, "10.0.1.4", t)); /* the total is spent */
    ing_clients_deinit(&c);
    /* A table full of busy addresses: newcomers share a slot, memory does not grow. */
    ing_clients_init(&c, 1, 1, 1000000, 1000000);
    char addr[32];
    for (int i = 0; i < 3 * ING_CLIENTS_SLOTS; i++) {
        snprintf(addr, sizeof(addr), "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
        (void)fail_once(&c, addr, t);
    }
    int used = 0;
    for (int i = 0; i < ING_CLIENTS_SLOTS; i++) used += c.slots[i].addr[0] != '\0';
    assert_int_equal(used, ING_CLIENTS_SLOTS);
    /* Once their budgets refill, the slots are taken by new addresses again. */
    assert_true(ing_clients_auth_allowed(&c, "192.168.0.1", t + 2 * SEC, &retry));
    (void)fail_once(&c, "192.168.0.1", t + 2 * SEC);
    assert_false(ing_clients_auth_allowed(&c, "192.168.0.1", t + 2 * SEC, &retry));
    assert_true(ing_clients_auth_allowed(&c, "192.168.0.2", t + 2 * SEC, &retry));
    ing_clients_deinit(&c);
}

/* One failed authentication from each of n addresses "a.b.c.i" under prefix "a.b.c.". */
static void fail_from_many(ing_clients_t *c, const char *prefix, int n, int64_t now_ns)
{
    char addr[32];
    for (int i = 0; i < n; i++) {
        snprintf(addr, sizeof(addr), "%s%d", prefix, i);
        (void)fail_once(c, addr, now_ns);
    }
}

/* Many addresses spend the total budget: an address that authenticated a moment ago is still
 * heard (within its own budget), one never seen is not. */
static void test_clients_trusted_address(void **state)
{
    ing_clients_t c;
    int64_t t = 100 * SEC;
    int retry = 0;
    ing_clients_init(&c, 1, 2, 1, 10);
    assert_true(authentic_once(&c, "10.9.0.1", t, &retry)); /* authentic */
    fail_from_many(&c, "10.8.0.", 20, t);
    assert_false(ing_clients_auth_allowed(&c, "10.9.0.2", t + SEC / 2, &retry));
    assert_true(ing_clients_auth_allowed(&c, "10.9.0.1", t + SEC / 2, &retry));
    for (int i = 0; i < 2; i++) assert_true(fail_once(&c, "10.9.0.1", t + SEC / 2));
    assert_false(fail_once(&c, "10.9.0.1", t + SEC / 2)); /* its own budget */
    /* The trust lapses ING_CLIENTS_TRUST_S after the last authentic request. */
    int64_t later = t + (int64_t)ING_CLIENTS_TRUST_S * SEC + SEC;
    fail_from_many(&c, "10.7.0.", 20, later);
    assert_false(ing_clients_auth_allowed(&c, "10.9.0.1", later, &retry));
    ing_clients_deinit(&c);
}

/* A sender's concurrency is not a failure: a trusted address with more requests being checked
 * at once than its budget of failures is not refused for it, while an address never seen yet
 * is (its budget bounds what its requests together can spend). The failures of a trusted
 * address stay charged, all of them: junk checked together buys no faster rate. */
/* Workers read the clock before the clients' lock, so a take may come with an older time than
 * the take before it: with a burst of 1 that earlier charge must not look like one ahead of
 * it. */
static void test_clients_take_with_an_older_clock(void **state)
{
    (void)state;
    ing_clients_t c;
    int64_t t = 100 * SEC;
    int retry = 0;
    ing_auth_charge_t newer, older;
    ing_clients_init(&c, 1, 1, 1000, 1000);
    assert_true(authentic_once(&c, "10.8.0.1", t, &retry)); /* trusted from now */
    assert_true(ing_clients_auth_take(&c, "10.8.0.1", t + SEC / 1000, &retry, &newer));
    assert_true(ing_clients_auth_take(&c, "10.8.0.1", t, &retry, &older));
    ing_clients_deinit(&c);
}

static void test_clients_trusted_concurrency(void **state)
{
    ing_clients_t c;
    int64_t t = 100 * SEC;
    int retry = 0;
    ing_auth_charge_t ch[12], one;
    ing_clients_init(&c, 1, 3, 1000, 1000);
    assert_true(authentic_once(&c, "10.6.0.1", t, &retry)); /* trusted from now */
    for (int i = 0; i < 12; i++) {
        assert_true(ing_clients_auth_allowed(&c, "10.6.0.1", t, &retry));
        assert_true(ing_clients_auth_take(&c, "10.6.0.1", t, &retry, &ch[i]));
        assert_false(ch[i].total); /* a trusted address is not charged to the total */
    }
    for (int i = 0; i < 12; i++) ing_clients_auth_refund(&c, &ch[i], t);
    assert_true(ing_clients_auth_allowed(&c, "10.6.0.1", t, &retry));

    /* The same twelve at once, all junk: admitted while checked; then the address is refused
     * until the nine failures past its burst are paid off at one a second, and one more token
     * is back. */
    for (int i = 0; i < 12; i++)
        assert_true(ing_clients_auth_take(&c, "10.6.0.1", t, &retry, &ch[i]));
    for (int i = 0; i < 12; i++) ing_clients_auth_failed(&c, &ch[i]);
    assert_false(ing_clients_auth_allowed(&c, "10.6.0.1", t, &retry));
    assert_false(ing_clients_auth_take(&c, "10.6.0.1", t, &retry, &one));
    assert_int_equal(retry, 10);
    assert_false(ing_clients_auth_take(&c, "10.6.0.1", t + 9 * SEC, &retry, &one));
    /* A second wave as soon as one token is back: it buys no faster rate, the same wait
     * follows it again (only the wave's first charge found the budget free). */
    int64_t w = t + 10 * SEC;
    for (int i = 0; i < 12; i++)
        assert_true(ing_clients_auth_take(&c, "10.6.0.1", w, &retry, &ch[i]));
    for (int i = 0; i < 12; i++) ing_clients_auth_failed(&c, &ch[i]);
    assert_false(ing_clients_auth_take(&c, "10.6.0.1", w + 11 * SEC, &retry, &one));
    assert_true(authentic_once(&c, "10.6.0.1", w + 12 * SEC, &retry));

    /* Never authenticated: three at once, the fourth is refused while they are checked. */
    for (int i = 0; i < 3; i++)
        assert_true(ing_clients_auth_take(&c, "10.6.0.2", t, &retry, &ch[i]));
    assert_false(ing_clients_auth_allowed(&c, "10.6.0.2", t, &retry));
    assert_false(ing_clients_auth_take(&c, "10.6.0.2", t, &retry, &one));
    for (int i = 0; i < 3; i++) ing_clients_auth_failed(&c, &ch[i]);
    ing_clients_deinit(&c);

    /* A new sender's first requests, checked together, are charged to the total; each gives
     * its charge back when authentic, also those settled after the first made it trusted. */
    ing_clients_init(&c, 1, 3, 1, 2);
    for (int i = 0; i < 2; i++) {
        assert_true(ing_clients_auth_take(&c, "10.5.0.1", t, &retry, &ch[i]));
        assert_true(ch[i].total);
    }
    for (int i = 0; i < 2; i++) ing_clients_auth_refund(&c, &ch[i], t);
    for (int i = 0; i < 2; i++) assert_true(fail_once(&c, "10.5.0.2", t));
    assert_false(fail_once(&c, "10.5.0.3", t)); /* the total is spent */
    ing_clients_deinit(&c);

    /* A slot whose requests are being checked is never given to another address, however
     * long ago its budget refilled. */
    ing_clients_init(&c, 1, 1, 1000, 1000);
    assert_true(ing_clients_auth_take(&c, "10.4.0.1", t, &retry, &one));
    char addr[32];
    for (int i = 0; i < 3 * ING_CLIENTS_SLOTS; i++) {
        snprintf(addr, sizeof(addr), "10.3.%d.%d", i >> 8, i & 255);
        (void)authentic_once(&c, addr, t + 3600 * SEC, NULL);
    }
    assert_string_equal(one.slot->addr, "10.4.0.1");
    assert_int_equal(one.slot->verifying, 1);
    ing_clients_auth_failed(&c, &one);
    assert_int_equal(one.slot->verifying, 0);
    ing_clients_deinit(&c);
}

/* Many addresses that spent their budgets, or hold their connections, fill the table: an
 * address that finds no slot is only under the total budget for its authentications, never
 * under another address's spent budget, and its connections are refused (table_full) rather
 * than admitted uncapped; once a slot frees up it is admitted. */
static void test_clients_table_full(void **state)
{
    ing_clients_t c;
    int64_t t = 100 * SEC;
    int retry = 0;
    char addr[32];
    bool full = false;
    int admitted = 0, refused_full = 0;
    ing_clients_init(&c, 1, 1, 1000000, 1000000);
    for (int i = 0; i < 3 * ING_CLIENTS_SLOTS; i++) {
        snprintf(addr, sizeof(addr), "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
        (void)fail_once(&c, addr, t);
        ing_client_t *a = ing_clients_connect(&c, addr, 1, t, &full);
        admitted += a != NULL;
        refused_full += a == NULL && full;
        assert_true(a != NULL || full); /* a newcomer at its first connection: never "at cap" */
    }
    assert_int_equal(admitted, ING_CLIENTS_SLOTS);
    assert_int_equal(refused_full, 2 * ING_CLIENTS_SLOTS);
    for (int i = 0; i < 64; i++) {
        snprintf(addr, sizeof(addr), "192.168.%d.%d", i >> 8, i & 255);
        assert_true(ing_clients_auth_allowed(&c, addr, t, &retry));
        full = false;
        assert_null(ing_clients_connect(&c, addr, 1, t, &full));
        assert_true(full);
    }
    /* The connections close and the budgets refill: the slots are free for newcomers again. */
    for (int i = 0; i < ING_CLIENTS_SLOTS; i++) ing_clients_disconnect(&c, &c.slots[i]);
    ing_client_t *a = ing_clients_connect(&c, "192.168.9.9", 1, t + 10 * SEC, &full);
    assert_non_null(a);
    assert_false(full);
    assert_null(ing_clients_connect(&c, "192.168.9.9", 1, t + 10 * SEC, &full));
    assert_false(full); /* at its own cap, not a full table */
    ing_clients_deinit(&c);
    /* The total budget still binds an address without a slot. */
    ing_clients_init(&c, 1, 1, 1, 2);
    for (int i = 0; i < 3 * ING_CLIENTS_SLOTS; i++) {
        snprintf(addr, sizeof(addr), "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
        (void)fail_once(&c, addr, t);
    }
    assert_false(ing_clients_auth_allowed(&c, "192.168.0.1", t, &retry));
    ing_clients_deinit(&c);
}

/* Body memory per address: reserved up to the cap given, given back, and a slot is not
 * handed to another address while its connection holds a reservation. */
static void test_clients_body_share(void **state)
{
    ing_clients_t c;
    int64_t t = 100 * SEC;
    ing_clients_init(&c, 1, 1, 1000, 1000);
    ing_client_t *a = ing_clients_connect(&c, "10.0.0.1", 8, t, NULL);
    ing_client_t *b = ing_clients_connect(&c, "10.0.0.2", 8, t, NULL);
    assert_non_null(a);
    assert_non_null(b);
    assert_true(ing_clients_body_reserve(&c, a, 600, 1000));
    assert_false(ing_clients_body_reserve(&c, a, 600, 1000));
    assert_true(ing_clients_body_reserve(&c, a, 400, 1000));
    assert_true(ing_clients_body_reserve(&c, b, 1000, 1000)); /* its own share */
    ing_clients_body_release(&c, a, 600);
    assert_true(ing_clients_body_reserve(&c, a, 600, 1000));
    ing_clients_body_release(&c, a, 1000);
    ing_clients_body_release(&c, b, 1000);
    assert_int_equal(a->body_bytes, 0);
    assert_int_equal(b->body_bytes, 0);
    ing_clients_deinit(&c);
}

static void test_lineage_format(void **state)
{
    char buf[ING_LINEAGE_MAX];
    ing_lineage_t l = {"01890a5d-ac96-774b-bcce-b302099a8057",
                       "demo",
                       "m\"1\n",
                       "a.b",
                       1700000000000000,
                       1700000000001000,
                       202,
                       NULL,
                       3,
                       42,
                       1000,
                       0,
                       "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"};
    int n = ing_lineage_format(&l, buf, sizeof(buf));
    assert_true(n > 0);
    json_error_t err;
    json_t *j = json_loadb(buf, (size_t)n, JSON_REJECT_DUPLICATES, &err);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "v")), 1);
    assert_string_equal(json_string_value(json_object_get(j, "stage")), "ingress");
    assert_string_equal(json_string_value(json_object_get(j, "message_id")), "m\"1\n");
    assert_true(json_is_null(json_object_get(j, "error_code")));
    assert_int_equal(json_integer_value(json_object_get(j, "partition")), 3);
    assert_int_equal(json_integer_value(json_object_get(j, "offset")), 42);
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 202);
    assert_string_equal(json_string_value(json_object_get(j, "body_sha256")),
                        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    json_decref(j);
    /* A rejection: no source known, no ids, no partition. Long source names are cut to 64. */
    char longname[200];
    memset(longname, 's', sizeof(longname) - 1);
    longname[199] = '\0';
    ing_lineage_t r = {"01890a5d-ac96-774b-bcce-b302099a8057",
                       longname,
                       NULL,
                       NULL,
                       1,
                       2,
                       404,
                       "unknown_source",
                       -1,
                       -1,
                       5,
                       0,
                       NULL};
    n = ing_lineage_format(&r, buf, sizeof(buf));
    j = json_loadb(buf, (size_t)n, 0, &err);
    assert_non_null(j);
    assert_int_equal(strlen(json_string_value(json_object_get(j, "source"))), 64);
    assert_null(json_object_get(j, "partition"));
    assert_null(json_object_get(j, "message_id"));
    assert_null(json_object_get(j, "body_sha256"));
    assert_string_equal(json_string_value(json_object_get(j, "error_code")), "unknown_source");
    json_decref(j);
    assert_int_equal(ing_lineage_format(&l, buf, 40), HL_ETOOBIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ratelimit),
        cmocka_unit_test(test_ratelimit_check),
        cmocka_unit_test(test_clients_failed_auth),
        cmocka_unit_test(test_clients_table_full),
        cmocka_unit_test(test_clients_body_share),
        cmocka_unit_test(test_clients_trusted_address),
        cmocka_unit_test(test_clients_trusted_concurrency),
        cmocka_unit_test(test_clients_take_with_an_older_clock),
        cmocka_unit_test(test_lineage_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
