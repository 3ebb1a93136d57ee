'use strict';
// The seed design of a webhook receiver, rebuilt as a benchmark peer: Express + pg, one
// process, Standard Webhooks signatures checked with node's crypto. Two variants, chosen with
// SEED_MODE (or --mode):
//
//   sync   check the idempotency key with a SELECT, INSERT the event, then answer 202
//          (durable: the row is committed before the answer).
//   queue  push the event on an in-memory array and answer 202 at once; a timer flushes the
//          array every 100 ms in multi-row INSERTs of 25 rows (not durable: a crash loses
//          whatever is queued).
//
// Environment: SEED_MODE (sync), SEED_PORT (3000), SEED_SECRET (whsec_…, required),
// SEED_PG (libpq-style connection string, default the local stack), SEED_SCHEMA (public),
// SEED_POOL (pg pool size, 10: the pg default), SEED_TOLERANCE_S (300).
// Rows go to <schema>.webhook_events, the table of proto/sql, so both variants and hookline
// store the same rows with the same unique key.

const crypto = require('crypto');
const express = require('express');
const { Pool } = require('pg');

const argMode = process.argv.indexOf('--mode');
const mode = argMode > 0 ? process.argv[argMode + 1] : process.env.SEED_MODE || 'sync';
if (mode !== 'sync' && mode !== 'queue') {
    console.error(`seed: mode must be sync or queue, not ${mode}`);
    process.exit(2);
}
const port = Number(process.env.SEED_PORT || 3000);
const secret = process.env.SEED_SECRET || '';
if (!secret.startsWith('whsec_')) {
    console.error('seed: SEED_SECRET must hold a whsec_ secret');
    process.exit(2);
}
const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
const schema = process.env.SEED_SCHEMA || 'public';
if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) {
    console.error(`seed: bad schema name ${schema}`);
    process.exit(2);
}
const toleranceS = Number(process.env.SEED_TOLERANCE_S || 300);
const BATCH = 25;
const FLUSH_MS = 100;

const pool = new Pool({
    connectionString:
        process.env.SEED_PG || 'postgresql://hookline@127.0.0.1:55432/hookline',
    max: Number(process.env.SEED_POOL || 10),
    options: `-c search_path=${schema}`,
});

// Standard Webhooks: HMAC-SHA256 over "id.timestamp.body", base64, "v1," prefix; the header
// may list several space-separated signatures.
function verify(req) {
    const id = req.get('webhook-id');
    const ts = req.get('webhook-timestamp');
    const sigs = req.get('webhook-signature');
    if (!id || !ts || !sigs) return 'missing_signature';
    if (Math.abs(Date.now() / 1000 - Number(ts)) > toleranceS) return 'stale_timestamp';
    const mac = crypto.createHmac('sha256', key)
        .update(`${id}.${ts}.`).update(req.body).digest();
    for (const s of sigs.split(' ')) {
        if (!s.startsWith('v1,')) continue;
        const got = Buffer.from(s.slice(3), 'base64');
        if (got.length === mac.length && crypto.timingSafeEqual(got, mac)) return null;
    }
    return 'bad_signature';
}

function fail(res, status, code) {
    res.status(status).json({ error: { code } });
}

const INSERT_COLS = '(source, message_id, event_type, request_id, received_at,' +
    ' kafka_partition, kafka_offset, payload)';

// sync: SELECT for the key, then INSERT, then answer. The INSERT still says ON CONFLICT DO
// NOTHING because two retries of one event can pass the SELECT at the same time.
async function storeSync(ev) {
    const seen = await pool.query(
        'SELECT 1 FROM webhook_events WHERE source = $1 AND message_id = $2 AND event_type = $3',
        [ev.source, ev.messageId, ev.eventType]);
    if (seen.rowCount > 0) return true;
    await pool.query(
        `INSERT INTO webhook_events ${INSERT_COLS} VALUES ($1, $2, $3, $4, $5, 0, 0, $6)` +
        ' ON CONFLICT ON CONSTRAINT webhook_events_key DO NOTHING',
        [ev.source, ev.messageId, ev.eventType, ev.requestId, ev.receivedAt, ev.payload]);
    return false;
}

// queue: everything queued is written by the timer, BATCH rows per statement.
let queue = [];
let flushing = false;
let flushErrors = 0;
async function flush() {
    if (flushing || queue.length === 0) return;
    flushing = true;
    const todo = queue;
    queue = [];
    try {
        for (let i = 0; i < todo.length; i += BATCH) {
            const part = todo.slice(i, i + BATCH);
            const values = [];
            const params = [];
            part.forEach((ev, k) => {
                const b = k * 6;
                values.push(`($${b + 1}, $${b + 2}, $${b + 3}, $${b + 4}, $${b + 5}, 0, 0, $${b + 6})`);
                params.push(ev.source, ev.messageId, ev.eventType, ev.requestId, ev.receivedAt,
                    ev.payload);
            });
            await pool.query(`INSERT INTO webhook_events ${INSERT_COLS} VALUES ${values.join(', ')}` +
                ' ON CONFLICT ON CONSTRAINT webhook_events_key DO NOTHING', params);
        }
    } catch (err) {
        flushErrors++;
        console.error(`seed: flush failed: ${err.message}`);
    } finally {
        flushing = false;
    }
}

const app = express();
app.disable('x-powered-by');
app.disable('etag');
app.get('/healthz', (req, res) => res.json({ ok: true, mode, queued: queue.length, flushErrors }));
app.post('/v1/webhooks/:source', express.raw({ type: '*/*', limit: '1mb' }), async (req, res) => {
    const receivedAt = new Date();
    if (!Buffer.isBuffer(req.body)) return fail(res, 400, 'missing_body');
    const why = verify(req);
    if (why) return fail(res, 401, why);
    let body;
    try {
        body = JSON.parse(req.body.toString('utf8'));
    } catch (e) {
        return fail(res, 400, 'invalid_json');
    }
    const messageId = typeof body.messageId === 'string' ? body.messageId : req.get('webhook-id');
    const eventType = typeof body.eventType === 'string' ? body.eventType : body.type;
    if (typeof messageId !== 'string' || typeof eventType !== 'string') {
        return fail(res, 400, 'missing_field');
    }
    const ev = {
        source: req.params.source, messageId, eventType, requestId: crypto.randomUUID(),
        receivedAt, payload: req.body.toString('utf8'),
    };
    res.set('X-Request-Id', ev.requestId);
    if (mode === 'queue') {
        queue.push(ev);
        return res.status(202).json({ status: 'accepted', request_id: ev.requestId, message_id: messageId });
    }
    try {
        const duplicate = await storeSync(ev);
        res.status(202).json({ status: 'accepted', request_id: ev.requestId, message_id: messageId, duplicate });
    } catch (err) {
        res.set('Retry-After', '1');
        fail(res, 503, 'unavailable');
    }
});

const server = app.listen(port, '127.0.0.1', () => {
    console.log(`seed: ${mode} listening on 127.0.0.1:${port}, schema ${schema}`);
});
server.keepAliveTimeout = 30000;
const timer = mode === 'queue' ? setInterval(flush, FLUSH_MS) : null;

async function stop() {
    if (timer) clearInterval(timer);
    server.close();
    while (flushing) await new Promise((r) => setTimeout(r, 10));
    await flush();
    await pool.end();
    process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
