'use strict'
// The provider tap (never-received webhooks) against a real `sendpromptly
// serve`, with deliveries signed by the official `stripe` library's
// `webhooks.generateTestHeaderString`: accepted when signed with the
// configured endpoint secret; tampered, stale, wrong-secret and unsigned
// deliveries refused with 400 and nothing stored; an event whose receipt
// never comes opens a `missing_receipt` incident after the receipt grace.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const Stripe = require('stripe')
const { startServer } = require('./server.js')

const stripe = new Stripe('sk_test_not_used_for_any_call')
const WHSEC = 'whsec_node_tap_test_secret'

let server
let projectId

async function api(method, path, body) {
  const res = await fetch(`${server.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${server.apiKey}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const text = await res.text()
  return { status: res.status, json: text ? JSON.parse(text) : null }
}

async function tap(payload, header) {
  const headers = { 'content-type': 'application/json; charset=utf-8' }
  if (header !== undefined) headers['stripe-signature'] = header
  const res = await fetch(`${server.url}/v1/providers/stripe/webhooks/${projectId}`, {
    method: 'POST',
    headers,
    body: payload,
  })
  return { status: res.status, json: await res.json() }
}

function invoicePaid(id, livemode = true) {
  return JSON.stringify({
    id,
    object: 'event',
    api_version: '2025-07-30.basil',
    created: Math.floor(Date.now() / 1000),
    livemode,
    pending_webhooks: 1,
    type: 'invoice.paid',
    data: {
      object: {
        id: `in_${id}`, object: 'invoice', customer: 'cus_node', amount_paid: 4200, currency: 'eur', status: 'paid',
      },
    },
  })
}

async function until(what, check, timeoutMs = 15_000) {
  const started = Date.now()
  for (;;) {
    const value = await check()
    if (value) return value
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

before(async () => {
  server = await startServer()
  const project = await api('GET', '/v1/project')
  projectId = project.json.id
  const saved = await api('PATCH', '/v1/project', {
    provider_tap: { stripe_endpoint_secrets: [WHSEC], receipt_grace_seconds: 1 },
  })
  assert.equal(saved.status, 200, JSON.stringify(saved.json))
  assert.deepEqual(saved.json.provider_tap.stripe_endpoint_secrets, ['…cret'])
  assert.ok(saved.json.provider_tap.stripe_webhook_url.endsWith(`/v1/providers/stripe/webhooks/${projectId}`))
})

after(async () => {
  await server?.stop()
})

test('a delivery signed by the stripe library is recorded; no receipt opens missing_receipt', async () => {
  const payload = invoicePaid('evt_node_tap_1')
  const header = stripe.webhooks.generateTestHeaderString({ payload, secret: WHSEC })
  const res = await tap(payload, header)
  assert.equal(res.status, 200, JSON.stringify(res.json))
  assert.equal(res.json.outcome, 'created')
  assert.equal(res.json.event_type, 'invoice.paid')

  const event = await until('a missing_receipt incident', async () => {
    const r = await api('GET', '/v1/events/stripe/evt_node_tap_1')
    return r.json.incident ? r.json : null
  })
  assert.equal(event.incident.kind, 'missing_receipt')
  assert.match(event.incident.last_error, /^Stripe sent `evt_node_tap_1` \(`invoice\.paid`, cus_node, 42\.00 EUR\) at .*; your app never sent a receipt\.$/)
  assert.equal(event.event.provider_copy.learned_via, 'tap')

  // The app's late receipt resolves it.
  const receipt = await api('POST', '/v1/receipt', {
    provider: 'stripe', event_id: 'evt_node_tap_1', event_type: 'invoice.paid', subject: 'cus_node',
  })
  assert.equal(receipt.status, 201)
  assert.equal(receipt.json.incident.resolution, 'receipt_arrived')
})

test('tampered, stale, wrong-secret and unsigned deliveries are refused and nothing is stored', async () => {
  const payload = invoicePaid('evt_node_bad')
  const good = stripe.webhooks.generateTestHeaderString({ payload, secret: WHSEC })
  const cases = [
    ['tampered', payload.replace('4200', '4201'), good, /no signatures found matching/],
    [
      'stale',
      payload,
      stripe.webhooks.generateTestHeaderString({ payload, secret: WHSEC, timestamp: Math.floor(Date.now() / 1000) - 400 }),
      /timestamp outside the tolerance zone/,
    ],
    ['wrong secret', payload, stripe.webhooks.generateTestHeaderString({ payload, secret: 'whsec_other' }), /no signatures found matching/],
    ['unsigned', payload, undefined, /unsigned delivery/],
  ]
  for (const [what, body, header, reason] of cases) {
    const res = await tap(body, header)
    assert.equal(res.status, 400, `${what}: ${JSON.stringify(res.json)}`)
    assert.equal(res.json.error.type, 'webhook_rejected', what)
    assert.match(res.json.error.message, reason, what)
  }
  const stored = await api('GET', '/v1/events/stripe/evt_node_bad')
  assert.equal(stored.status, 404)
})

test('a test-mode event is never a live incident', async () => {
  const payload = invoicePaid('evt_node_test_mode', false)
  const res = await tap(payload, stripe.webhooks.generateTestHeaderString({ payload, secret: WHSEC }))
  assert.equal(res.status, 200)
  await until('the test-mode incident', async () => {
    const r = await api('GET', '/v1/events/stripe/evt_node_test_mode')
    return r.json.incident ? r.json : null
  })
  const live = await api('GET', '/v1/incidents?livemode=true')
  assert.ok(!live.json.data.some((i) => i.event.event_id === 'evt_node_test_mode'))
  const testOnly = await api('GET', '/v1/incidents?livemode=false')
  assert.deepEqual(testOnly.json.data.map((i) => i.event.event_id), ['evt_node_test_mode'])
  assert.equal(testOnly.json.data[0].livemode, false)
})
