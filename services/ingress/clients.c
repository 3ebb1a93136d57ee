/* The per-address table: FNV-1a over the address text, from a seed drawn at start, picks the
 * first slot, linear probing the rest; a slot is reused once its budget has refilled, its trust
 * has lapsed, its connections are closed and none of its requests is being checked. One mutex: the
 * work under it is a few string compares. */
#include "clients.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "hl/util.h"

void ing_clients_init(ing_clients_t *c, uint32_t per_client_rate, uint32_t per_client_burst,
                      uint32_t total_rate, uint32_t total_burst)
{
    pthread_mutex_init(&c->lock, NULL);
    c->last_now_ns = 0;
    c->slots = hl_xcalloc(ING_CLIENTS_SLOTS, sizeof(ing_client_t));
    c->rate = per_client_rate;
    c->burst = per_client_burst;
    /* Unpredictable, so addresses cannot be chosen to land in one another's probe window. */
    if (getrandom(&c->seed, sizeof(c->seed), GRND_NONBLOCK) != (ssize_t)sizeof(c->seed))
        c->seed = (uint32_t)hl_mono_us() ^ (uint32_t)(uintptr_t)c->slots;
    ing_ratelimit_init(&c->failed_total, total_rate, total_burst);
}

void ing_clients_deinit(ing_clients_t *c)
{
    if (c == NULL || c->slots == NULL) return;
    free(c->slots);
    c->slots = NULL;
    pthread_mutex_destroy(&c->lock);
}

static uint32_t hash_addr(uint32_t seed, const char *s)
{
    uint32_t h = 2166136261u ^ seed;
    for (; *s != '\0'; s++) h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* The slot of addr, taken anew when needed; NULL when every slot of its window is busy: the
 * address is then under the total budget only and its connections are refused, rather than
 * charged with another address's budget and connections. Called with c->lock held. */
static ing_client_t *slot_of(ing_clients_t *c, const char *addr, int64_t now_ns)
{
    uint32_t first = hash_addr(c->seed, addr) % ING_CLIENTS_SLOTS;
    ing_client_t *spare = NULL;
    for (uint32_t i = 0; i < ING_CLIENTS_PROBE; i++) {
        ing_client_t *s = &c->slots[(first + i) % ING_CLIENTS_SLOTS];
        if (strncmp(s->addr, addr, sizeof(s->addr)) == 0 && s->addr[0] != '\0') return s;
        if (spare == NULL && (s->addr[0] == '\0' || (s->connections == 0 && s->verifying == 0 &&
                                                     s->trusted_until_ns <= now_ns &&
                                                     ing_ratelimit_idle(&s->failed, now_ns))))
            spare = s;
    }
    if (spare == NULL) return NULL;
    hl_strlcpy(spare->addr, addr, sizeof(spare->addr));
    ing_ratelimit_init(&spare->failed, c->rate, c->burst);
    spare->connections = 0;
    spare->body_bytes = 0;
    spare->trusted_until_ns = 0;
    spare->verifying = 0;
    return spare;
}

/* Is the total budget to be asked of s's requests at now_ns? Not of a trusted address's. */
static bool total_applies(const ing_client_t *s, int64_t now_ns)
{
    return s == NULL || s->trusted_until_ns <= now_ns;
}

/* The charges of s's requests still being checked that its budget is judged without: all of
 * them for a trusted address, none for another. */
static unsigned pending_of(const ing_client_t *s, int64_t now_ns)
{
    return s != NULL && s->trusted_until_ns > now_ns ? s->verifying : 0;
}

bool ing_clients_auth_allowed(ing_clients_t *c, const char *addr, int64_t now_ns,
                              int *retry_after_s)
{
    pthread_mutex_lock(&c->lock);
    ing_client_t *s = slot_of(c, addr, now_ns);
    bool ok =
        (s == NULL ||
         ing_ratelimit_check_pending(&s->failed, now_ns, pending_of(s, now_ns), retry_after_s)) &&
        (!total_applies(s, now_ns) || ing_ratelimit_check(&c->failed_total, now_ns, retry_after_s));
    pthread_mutex_unlock(&c->lock);
    return ok;
}

bool ing_clients_auth_take(ing_clients_t *c, const char *addr, int64_t now_ns, int *retry_after_s,
                           ing_auth_charge_t *charge)
{
    pthread_mutex_lock(&c->lock);
    /* Callers read the clock before the lock: one that read it earlier may get the lock after
     * one that read it later and took, and would see that charge ahead of its own time, over
     * a burst of 1. The charge is judged at the latest time a caller brought. */
    if (now_ns < c->last_now_ns) now_ns = c->last_now_ns;
    c->last_now_ns = now_ns;
    ing_client_t *s = slot_of(c, addr, now_ns);
    bool ok = s == NULL ||
              ing_ratelimit_take_pending(&s->failed, now_ns, pending_of(s, now_ns), retry_after_s);
    bool total = ok && total_applies(s, now_ns);
    if (total && !ing_ratelimit_take(&c->failed_total, now_ns, retry_after_s)) {
        if (s != NULL) ing_ratelimit_refund(&s->failed);
        ok = total = false;
    }
    if (ok && s != NULL) s->verifying++;
    pthread_mutex_unlock(&c->lock);
    *charge = (ing_auth_charge_t){ok ? s : NULL, total};
    return ok;
}

void ing_clients_auth_refund(ing_clients_t *c, const ing_auth_charge_t *charge, int64_t now_ns)
{
    pthread_mutex_lock(&c->lock);
    if (charge->total) ing_ratelimit_refund(&c->failed_total);
    ing_client_t *s = charge->slot;
    if (s != NULL) {
        ing_ratelimit_refund(&s->failed);
        s->trusted_until_ns = now_ns + (int64_t)ING_CLIENTS_TRUST_S * 1000000000;
        if (s->verifying > 0) s->verifying--;
    }
    pthread_mutex_unlock(&c->lock);
}

void ing_clients_auth_failed(ing_clients_t *c, const ing_auth_charge_t *charge)
{
    pthread_mutex_lock(&c->lock);
    if (charge->slot != NULL && charge->slot->verifying > 0) charge->slot->verifying--;
    pthread_mutex_unlock(&c->lock);
}

ing_client_t *ing_clients_connect(ing_clients_t *c, const char *addr, unsigned max, int64_t now_ns,
                                  bool *table_full)
{
    pthread_mutex_lock(&c->lock);
    ing_client_t *s = slot_of(c, addr, now_ns);
    if (table_full != NULL) *table_full = s == NULL;
    if (s != NULL && s->connections >= max)
        s = NULL;
    else if (s != NULL)
        s->connections++;
    pthread_mutex_unlock(&c->lock);
    return s;
}

void ing_clients_disconnect(ing_clients_t *c, ing_client_t *slot)
{
    if (slot == NULL) return;
    pthread_mutex_lock(&c->lock);
    if (slot->connections > 0) slot->connections--;
    pthread_mutex_unlock(&c->lock);
}

bool ing_clients_body_reserve(ing_clients_t *c, ing_client_t *slot, uint64_t n, uint64_t cap)
{
    pthread_mutex_lock(&c->lock);
    bool ok = slot->body_bytes + n <= cap;
    if (ok) slot->body_bytes += n;
    pthread_mutex_unlock(&c->lock);
    return ok;
}

void ing_clients_body_release(ing_clients_t *c, ing_client_t *slot, uint64_t n)
{
    pthread_mutex_lock(&c->lock);
    slot->body_bytes = slot->body_bytes >= n ? slot->body_bytes - n : 0;
    pthread_mutex_unlock(&c->lock);
}
