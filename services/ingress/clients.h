/* What the ingress remembers per client address, shared by every worker: the budget of failed
 * authentications (per address and in total) and the connections open. A fixed table, so a
 * flood of addresses costs no memory: an address hashes (seeded at random) to one of
 * ING_CLIENTS_SLOTS slots and takes the first of ING_CLIENTS_PROBE slots from there that holds
 * it, is free or has nothing left to remember. When all of them are busy the address finds no
 * slot: its authentications are then only under the total budget, and its connections are
 * refused until a slot frees up (failing closed: many addresses cannot open connections past
 * the per-address cap). It never shares another address's slot, whose spent budget or
 * connections would turn it away for what the other did. */
#ifndef ING_CLIENTS_H
#define ING_CLIENTS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "ratelimit.h"

#define ING_CLIENTS_SLOTS 4096
#define ING_CLIENTS_PROBE 8
#define ING_CLIENT_ADDR_MAX 48 /* an IPv6 address in text, with its NUL */
/* An address is trusted this long after its last authentic request: its requests are then
 * only under its own budget of failed authentications, not the total, so junk from many
 * addresses spending the total does not turn the real senders away. */
#define ING_CLIENTS_TRUST_S 600

typedef struct {
    char addr[ING_CLIENT_ADDR_MAX]; /* the address as civetweb prints it; "" = free slot */
    ing_ratelimit_t failed;         /* this address's failed authentications */
    unsigned connections;           /* its connections open now (held: the slot stays its) */
    uint64_t body_bytes;            /* bytes its bodies being read or handled have reserved */
    int64_t trusted_until_ns;       /* ING_CLIENTS_TRUST_S after its last authentic request */
    unsigned verifying;             /* its requests charged by auth_take, not yet settled (held:
                                     * the slot stays its) */
} ing_client_t;

typedef struct {
    pthread_mutex_t lock;         /* guards every slot (held for a lookup and one update) */
    int64_t last_now_ns;          /* the latest time a caller of auth_take brought */
    ing_client_t *slots;          /* ING_CLIENTS_SLOTS of them, owned */
    ing_ratelimit_t failed_total; /* failed authentications of all addresses together */
    uint32_t rate, burst;         /* the per-address budget, for slots taken anew */
    uint32_t seed;                /* of the address hash, drawn at init */
} ing_clients_t;

/* Budgets of failed authentications a second (and their bursts): per address and in total.
 * Aborts on out-of-memory. */
void ing_clients_init(ing_clients_t *c, uint32_t per_client_rate, uint32_t per_client_burst,
                      uint32_t total_rate, uint32_t total_burst);
void ing_clients_deinit(ing_clients_t *c);

/* May a request from addr be authenticated? False, with *retry_after_s (>= 1) set, when addr
 * or all addresses together have spent their budget of failed authentications (the total is
 * not asked of a trusted address, and a trusted address's budget is judged as
 * ing_clients_auth_take does): the request is then refused before its body is read.
 * Charges nothing. Any worker thread. */
bool ing_clients_auth_allowed(ing_clients_t *c, const char *addr, int64_t now_ns,
                              int *retry_after_s);

/* What ing_clients_auth_take charged for one request, for the call that settles it. */
typedef struct {
    ing_client_t *slot; /* the address's slot, counted in its `verifying`; NULL: none */
    bool total;         /* the total budget was charged too */
} ing_auth_charge_t;

/* Charges one failed authentication to addr and, unless addr is trusted, to the total before
 * the signature is checked (*charge says what was charged), so requests checked together
 * cannot pass the budget together; false (nothing charged, *retry_after_s set when non-NULL)
 * when either budget is spent. A trusted address's budget is judged without the charges of
 * its requests still being checked (they are charged all the same): a sender's concurrency is
 * not a failure. Junk from a trusted address then spends at most its burst plus its requests
 * in flight at once (bounded by its connections, the worker threads and its share of body
 * memory), each failure stays charged, and the address is refused until they are paid off at
 * its rate: over time, junk is checked at the address's rate as from any other. Every charge
 * is settled by ing_clients_auth_refund (authentic) or ing_clients_auth_failed. Any worker
 * thread. */
bool ing_clients_auth_take(ing_clients_t *c, const char *addr, int64_t now_ns, int *retry_after_s,
                           ing_auth_charge_t *charge);
/* Gives back what ing_clients_auth_take charged: the request was authentic, and its address is
 * trusted for ING_CLIENTS_TRUST_S from now. */
void ing_clients_auth_refund(ing_clients_t *c, const ing_auth_charge_t *charge, int64_t now_ns);
/* Settles what ing_clients_auth_take charged as a failure: it stays charged. */
void ing_clients_auth_failed(ing_clients_t *c, const ing_auth_charge_t *charge);

/* Counts a new connection from addr when it has fewer than max open; returns its slot (to
 * pass to ing_clients_disconnect when the connection closes), or NULL when the connection is
 * to be turned away (nothing counted): addr is at max, or finds no slot, the table being full
 * around it, and then *table_full (when non-NULL) is set. Any worker thread. */
ing_client_t *ing_clients_connect(ing_clients_t *c, const char *addr, unsigned max, int64_t now_ns,
                                  bool *table_full);
/* Uncounts a connection ing_clients_connect counted in slot. NULL-safe. */
void ing_clients_disconnect(ing_clients_t *c, ing_client_t *slot);

/* Reserves n bytes of body memory for a request on a connection counted in slot, when the
 * slot's bodies then hold at most cap bytes; false (nothing reserved) past it. The slot stays
 * the address's while the connection is open, so the reservation cannot outlive it. */
bool ing_clients_body_reserve(ing_clients_t *c, ing_client_t *slot, uint64_t n, uint64_t cap);
/* Gives back n bytes ing_clients_body_reserve reserved in slot. */
void ing_clients_body_release(ing_clients_t *c, ing_client_t *slot, uint64_t n);

#endif
