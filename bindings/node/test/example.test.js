'use strict'
// examples/node/app.js end to end, as a user runs it (`node app.js` with its
// environment), against a real `sendpromptly serve`: Stripe events signed by
// the official `stripe` package, a Shopify delivery signed like Shopify, a
// failure that opens an incident, and a reprocess whose repair callback the
// example verifies and answers with a success that resolves the incident.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const crypto = require('node:crypto')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { spawn } = require('node:child_process')
const Stripe = require('stripe')
const { startServer } = require('./server.js')

const root = path.resolve(__dirname, '..', '..', '..')
const stripeSecret = 'whsec_example_app_stripe_secret'
const shopifySecret = 'shopify_example_app_secret'
const stripe = new Stripe('sk_test_unused')

let server
let app
let appUrl
let modules

async function api(method, p, body) {
  const res = await fetch(`${server.url}${p}`, {
    method,
    headers: { Authorization: `Bearer ${server.apiKey}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const text = await res.text()
  return { status: res.status, body: text ? JSON.parse(text) : null }
}

async function eventually(what, fn, timeoutMs = 20_000) {
  const start = Date.now()
  for (;;) {
    const value = await fn()
    if (value) return value
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

function stripeEvent(id, type, object) {
  return JSON.stringify(
    { id, object: 'event', api_version: '2024-06-20', created: Math.floor(Date.now() / 1000), livemode: false,
      pending_webhooks: 1, request: { id: null, idempotency_key: null }, type, data: { object } },
    null, 2)
}

async function postStripe(payload) {
  const header = stripe.webhooks.generateTestHeaderString({ payload, secret: stripeSecret })
  return fetch(`${appUrl}/webhooks/stripe`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'Stripe-Signature': header },
    body: payload,
  })
}

before(async () => {
  server = await startServer()
  // The example resolves `sendpromptly` and `express` as if installed in examples/node.
  modules = fs.mkdtempSync(path.join(os.tmpdir(), 'sendpromptly-example-modules-'))
  fs.symlinkSync(path.resolve(__dirname, '..'), path.join(modules, 'sendpromptly'))
  app = spawn(process.execPath, [path.join(root, 'examples', 'node', 'app.js')], {
    cwd: path.join(root, 'examples', 'node'),
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      PORT: '0',
      NODE_PATH: [modules, path.resolve(__dirname, '..', 'node_modules')].join(path.delimiter),
      SENDPROMPTLY_API_KEY: server.apiKey,
      SENDPROMPTLY_URL: server.url,
      SENDPROMPTLY_SIGNING_SECRET: server.secret,
      STRIPE_WEBHOOK_SECRET: stripeSecret,
      SHOPIFY_API_SECRET: shopifySecret,
    },
  })
  let output = ''
  app.stdout.on('data', (c) => (output += c))
  app.stderr.on('data', (c) => (output += c))
  app.output = () => output
  const port = await eventually('the example to listen', () => /listening on (\d+)/.exec(output)?.[1], 30_000)
    .catch((err) => { throw new Error(`${err.message}:\n${output}`) })
  appUrl = `http://127.0.0.1:${port}`
  const patched = await api('PATCH', '/v1/project', { repair_url: `${appUrl}/sendpromptly/repair` })
  assert.equal(patched.status, 200)
})

after(async () => {
  if (app && app.exitCode === null) app.kill('SIGKILL')
  if (server) await server.stop()
  if (modules) fs.rmSync(modules, { recursive: true, force: true })
})

test('a Stripe invoice.paid signed by the stripe package: receipt, then success', async () => {
  const id = `evt_node_example_${Date.now()}`
  const res = await postStripe(stripeEvent(id, 'invoice.paid', { id: 'in_1', object: 'invoice', customer: 'cus_node', amount_paid: 2000 }))
  assert.equal(res.status, 200)
  const ev = await eventually('the success', async () => {
    const r = await api('GET', `/v1/events/stripe/${id}`)
    return r.status === 200 && r.body.event.state === 'succeeded' && r.body
  })
  assert.equal(ev.event.subject, 'cus_node')
  assert.equal(ev.incident, null)
})

test('a forged Stripe signature is refused and records nothing', async () => {
  const id = `evt_node_forged_${Date.now()}`
  const res = await fetch(`${appUrl}/webhooks/stripe`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'Stripe-Signature': `t=${Math.floor(Date.now() / 1000)},v1=${'0'.repeat(64)}` },
    body: stripeEvent(id, 'invoice.paid', { id: 'in_2', customer: 'cus_node' }),
  })
  assert.equal(res.status, 400)
  assert.equal((await api('GET', `/v1/events/stripe/${id}`)).status, 404)
})

test('a Shopify orders/paid delivery: background receipt and success', async () => {
  const body = JSON.stringify({ id: 820982911946154500, total_price: '19.00', currency: 'USD', customer: { id: 115310627314723950 } })
  const hmac = crypto.createHmac('sha256', shopifySecret).update(body).digest('base64')
  const webhookId = crypto.randomUUID()
  const res = await fetch(`${appUrl}/webhooks/shopify`, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/json',
      'X-Shopify-Hmac-Sha256': hmac,
      'X-Shopify-Topic': 'orders/paid',
      'X-Shopify-API-Version': '2025-07',
      'X-Shopify-Shop-Domain': 'example.myshopify.com',
      'X-Shopify-Webhook-Id': webhookId,
      'X-Shopify-Event-Id': webhookId,
      'X-Shopify-Triggered-At': new Date().toISOString(),
    },
    body,
  })
  assert.equal(res.status, 200, `${await res.text()}\n${app.output()}`)
  await eventually('the Shopify event to succeed', async () => {
    const r = await api('GET', '/v1/events?subject=115310627314723950')
    return r.status === 200 && r.body.data.some((e) => e.state === 'succeeded' && e.event_type === 'orders/paid')
  })
})

test('a failed effect opens an incident; reprocess calls the repair endpoint, which resolves it', async () => {
  // An invoice without a customer: the example's addCredits throws, so it reports a failure.
  const id = `evt_node_failing_${Date.now()}`
  const res = await postStripe(stripeEvent(id, 'invoice.paid', { id: 'in_3', object: 'invoice', customer: null, amount_paid: 500 }))
  assert.equal(res.status, 200)
  const failed = await eventually('the failed_result incident', async () => {
    const r = await api('GET', `/v1/events/stripe/${id}`)
    return r.status === 200 && r.body.incident && r.body.incident.kind === 'failed_result' && r.body.incident
  })
  assert.equal(failed.state, 'open')

  // The same event again, now attributable (support set the customer): a receipt the example
  // would have sent, failure, then a reprocess through the API. The repair endpoint verifies the
  // signed callback and reuses the same effect function.
  const id2 = `evt_node_repair_${Date.now()}`
  assert.equal((await api('POST', '/v1/receipt', { provider: 'stripe', event_id: id2, event_type: 'invoice.paid', subject: 'cus_repair', effect: 'credits.add', metadata: { credits: 500 } })).status, 201)
  assert.equal((await api('POST', '/v1/result', { provider: 'stripe', event_id: id2, status: 'failure', error: 'worker crashed' })).status, 200)
  const incident = (await api('GET', `/v1/events/stripe/${id2}`)).body.incident
  const rep = await api('POST', `/v1/incidents/${incident.id}/reprocess`, { note: 'node example test' })
  assert.equal(rep.status, 202)
  const resolved = await eventually('the repair to resolve the incident', async () => {
    const r = await api('GET', `/v1/incidents/${incident.id}`)
    return r.body.incident.state === 'resolved' && r.body
  })
  assert.equal(resolved.incident.resolution, 'success_result')
  const kinds = resolved.timeline.map((e) => e.kind)
  assert.ok(kinds.includes('callback.attempt'), `timeline: ${kinds}`)

  // A forged repair callback is refused by the example.
  const forged = await fetch(`${appUrl}/sendpromptly/repair`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'webhook-id': rep.body.reprocess_id, 'webhook-timestamp': String(Math.floor(Date.now() / 1000)), 'webhook-signature': 'v1,AAAA' },
    body: '{}',
  })
  assert.equal(forged.status, 400)
})

test('SIGTERM drains the background queue and exits 0', async () => {
  const exited = new Promise((resolve) => app.on('exit', (code) => resolve(code)))
  app.kill('SIGTERM')
  assert.equal(await exited, 0, app.output())
  assert.match(app.output(), /SendPromptly: delivered \d+, dropped 0/)
})
