'use strict'
// Interop with the official libraries: headers made by `stripe`
// (`webhooks.generateTestHeaderString`) and `standardwebhooks` verify here,
// tampered ones fail with the right error class; body and header shapes;
// and no input makes the process crash.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const crypto = require('node:crypto')
const Stripe = require('stripe')
const { Webhook } = require('standardwebhooks')
const sdk = require('..')

const {
  stripe,
  shopify,
  verifyRepairRequest,
  SendPromptlyError,
  SignatureVerificationError,
  InvalidSignatureError,
  StaleTimestampError,
  MalformedWebhookError,
  RawBodyError,
  WebhookSecretError,
} = sdk

const official = new Stripe('sk_test_placeholder')
const stripeSecret = 'whsec_test_secret_for_node_interop'
const whsec = 'whsec_' + Buffer.from('0123456789abcdef0123456789abcdef').toString('base64')

const stripePayload = JSON.stringify(
  {
    id: 'evt_1Q2w3E',
    object: 'event',
    type: 'invoice.paid',
    created: 1763800000,
    livemode: false,
    data: { object: { id: 'in_1', object: 'invoice', customer: 'cus_9s8d7f', amount_paid: 500 } },
  },
  null,
  2,
)

test('stripe: headers from the official package verify and return the event', () => {
  const header = official.webhooks.generateTestHeaderString({ payload: stripePayload, secret: stripeSecret })
  for (const payload of [stripePayload, Buffer.from(stripePayload), new Uint8Array(Buffer.from(stripePayload))]) {
    const event = stripe.verify(payload, header, stripeSecret)
    assert.equal(event.id, 'evt_1Q2w3E')
    assert.equal(event.type, 'invoice.paid')
    assert.equal(event.data.object.customer, 'cus_9s8d7f')
  }
  // The official library agrees.
  assert.equal(official.webhooks.constructEvent(stripePayload, header, stripeSecret).id, 'evt_1Q2w3E')
})

test('stripe: tampered, stale, wrong-secret and malformed headers fail by cause', () => {
  const header = official.webhooks.generateTestHeaderString({ payload: stripePayload, secret: stripeSecret })
  const tampered = stripePayload.replace('500', '900')
  assert.throws(() => stripe.verify(tampered, header, stripeSecret), InvalidSignatureError)
  assert.throws(() => official.webhooks.constructEvent(tampered, header, stripeSecret))
  assert.throws(() => stripe.verify(stripePayload, header, 'whsec_other'), InvalidSignatureError)

  const old = official.webhooks.generateTestHeaderString({
    payload: stripePayload,
    secret: stripeSecret,
    timestamp: Math.floor(Date.now() / 1000) - 600,
  })
  const stale = (() => {
    try {
      stripe.verify(stripePayload, old, stripeSecret)
    } catch (err) {
      return err
    }
  })()
  assert.ok(stale instanceof StaleTimestampError, stale)
  assert.ok(stale instanceof SignatureVerificationError)
  assert.equal(stale.provider, 'stripe')
  assert.equal(stale.category, 'stale_timestamp')
  assert.equal(stale.code, 'timestamp_outside_tolerance')
  // A larger tolerance accepts it, as the official library's does.
  assert.equal(stripe.verify(stripePayload, old, stripeSecret, { tolerance: 900 }).id, 'evt_1Q2w3E')
  assert.equal(official.webhooks.constructEvent(stripePayload, old, stripeSecret, 900).id, 'evt_1Q2w3E')

  assert.throws(() => stripe.verify(stripePayload, undefined, stripeSecret), MalformedWebhookError)
  assert.throws(() => stripe.verify(stripePayload, 'garbage', stripeSecret), MalformedWebhookError)
  assert.throws(() => stripe.verify(stripePayload, header, ''), WebhookSecretError)
})

test('stripe: a parsed body is named as the mistake it is', () => {
  const header = official.webhooks.generateTestHeaderString({ payload: stripePayload, secret: stripeSecret })
  const err = (() => {
    try {
      stripe.verify(JSON.parse(stripePayload), header, stripeSecret)
    } catch (e) {
      return e
    }
  })()
  assert.ok(err instanceof RawBodyError)
  assert.ok(err instanceof MalformedWebhookError)
  assert.match(err.message, /raw request body/)
  assert.match(err.message, /express\.raw/)
})

function repairBody() {
  return JSON.stringify({
    type: 'reprocess.requested',
    reprocess_id: 'rep_01',
    incident_id: 'inc_01',
    attempt: 1,
    requested_at: '2026-11-22T10:00:00Z',
    requested_by: 'console:alice@example.com',
    event: { provider: 'stripe', event_id: 'evt_1', event_type: 'invoice.paid', subject: 'cus_1' },
  })
}

function standardHeaders(body, { id = 'rep_01', at = new Date(), secret = whsec } = {}) {
  const signature = new Webhook(secret).sign(id, at, body)
  return {
    'webhook-id': id,
    'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
    'webhook-signature': signature,
  }
}

test('repair callbacks signed by the standardwebhooks package verify, in any header shape', () => {
  const body = repairBody()
  const headers = standardHeaders(body)
  const upper = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toUpperCase(), v]))
  for (const h of [headers, upper, new Headers(headers), new Map(Object.entries(headers)), Object.entries(headers)]) {
    const callback = verifyRepairRequest(Buffer.from(body), h, whsec)
    assert.equal(callback.reprocess_id, 'rep_01')
    assert.equal(callback.event.event_id, 'evt_1')
  }
  // Rotation: any of the secrets.
  assert.equal(verifyRepairRequest(body, headers, ['whsec_' + Buffer.alloc(32, 7).toString('base64'), whsec]).incident_id, 'inc_01')
})

test('tampered, stale and unsigned repair callbacks fail by cause', () => {
  const body = repairBody()
  const headers = standardHeaders(body)
  assert.throws(() => verifyRepairRequest(body.replace('cus_1', 'cus_2'), headers, whsec), InvalidSignatureError)
  const otherSecret = 'whsec_' + Buffer.alloc(32, 1).toString('base64')
  assert.throws(() => verifyRepairRequest(body, headers, otherSecret), InvalidSignatureError)
  const stale = standardHeaders(body, { at: new Date(Date.now() - 3600_000) })
  const err = (() => {
    try {
      verifyRepairRequest(body, stale, whsec)
    } catch (e) {
      return e
    }
  })()
  assert.ok(err instanceof StaleTimestampError)
  assert.equal(err.code, 'timestamp_too_old')
  assert.equal(err.provider, 'sendpromptly')
  assert.throws(() => verifyRepairRequest(body, {}, whsec), MalformedWebhookError)
  assert.throws(() => verifyRepairRequest(body, headers, undefined), WebhookSecretError)
  assert.throws(() => verifyRepairRequest(JSON.parse(body), headers, whsec), RawBodyError)
})

function shopifyDelivery(secret, body = JSON.stringify({ id: 820982911946154500, email: 'jon@example.com', total_price: '10.00' })) {
  return {
    body,
    headers: {
      'X-Shopify-Hmac-Sha256': crypto.createHmac('sha256', secret).update(body).digest('base64'),
      'X-Shopify-Topic': 'orders/paid',
      'X-Shopify-Shop-Domain': 'example.myshopify.com',
      'X-Shopify-Webhook-Id': 'b54557e4-bdd9-4b37-8a5f-bf7d70bcd043',
      'X-Shopify-Event-Id': '98880550-7158-44d4-b7cd-2c97c8a091b5',
      'X-Shopify-API-Version': '2025-07',
      'X-Shopify-Triggered-At': '2026-11-22T10:00:00Z',
    },
  }
}

test('shopify: verify returns topic, ids and body; a wrong secret fails', () => {
  const { body, headers } = shopifyDelivery('shpss_secret')
  const delivery = shopify.verify(Buffer.from(body), new Headers(headers), 'shpss_secret')
  assert.equal(delivery.topic, 'orders/paid')
  assert.equal(delivery.eventId, '98880550-7158-44d4-b7cd-2c97c8a091b5')
  assert.equal(delivery.dedupeId, delivery.eventId)
  assert.equal(delivery.shopDomain, 'example.myshopify.com')
  assert.equal(delivery.body.email, 'jon@example.com')
  assert.equal(shopify.verify(body, headers, ['old', 'shpss_secret']).topic, 'orders/paid')
  assert.throws(() => shopify.verify(body, headers, 'wrong'), InvalidSignatureError)
  assert.throws(() => shopify.verify(body, { 'x-shopify-topic': 'orders/paid' }, 'shpss_secret'), MalformedWebhookError)
  assert.throws(() => shopify.verify(JSON.parse(body), headers, 'shpss_secret'), RawBodyError)
})

test('no input crashes the process: every failure is a SendPromptlyError', () => {
  const odd = [
    undefined, null, 0, -1, NaN, 1e308, '', 'x'.repeat(100_000), '\u0000\uffff', true, [], [1, 2], {},
    { toString: () => 'x' }, new Map(), new Headers(), Symbol('s'), () => 1, 10n, Buffer.alloc(0),
    crypto.randomBytes(2048), new Float64Array(4), new ArrayBuffer(8),
  ]
  let calls = 0
  for (const a of odd) {
    for (const b of odd.slice(0, 12)) {
      for (const fn of [
        () => stripe.verify(a, b, a),
        () => stripe.verify(Buffer.from('{}'), b, 'whsec_x', { tolerance: a }),
        () => shopify.verify(a, b, a),
        () => verifyRepairRequest(a, b, b),
      ]) {
        calls++
        try {
          fn()
        } catch (err) {
          assert.ok(err instanceof SendPromptlyError, `${String(err)} from ${typeof a}/${typeof b}`)
        }
      }
    }
  }
  assert.ok(calls > 1000)
})
