'use strict'
// The seed workflow, driven from Node against a real `sendpromptly serve`:
// receipts and results, an incident, a reprocess whose repair callback an
// Express endpoint verifies (with this package and with the official
// `standardwebhooks` package) and answers with a success, proof links,
// manual resolution, look-ups and typed errors.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const http = require('node:http')
const express = require('express')
const { Webhook } = require('standardwebhooks')
const {
  SendPromptly,
  verifyRepairRequest,
  SendPromptlyError,
  AuthenticationError,
  NotFoundError,
  ValidationError,
  InvalidSignatureError,
} = require('..')
const { startServer } = require('./server.js')

let server
let sp
let repair
const callbacks = []

function listen(app) {
  return new Promise((resolve) => {
    const srv = http.createServer(app).listen(0, '127.0.0.1', () => resolve(srv))
  })
}

async function until(what, check, timeoutMs = 30_000) {
  const started = Date.now()
  for (;;) {
    const value = await check()
    if (value) return value
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 150))
  }
}

before(async () => {
  server = await startServer()
  sp = new SendPromptly({ apiKey: server.apiKey, baseUrl: server.url })

  // The app's repair endpoint, as docs/node.md shows it.
  const app = express()
  app.post('/sendpromptly/repair', express.raw({ type: 'application/json' }), async (req, res) => {
    let callback
    try {
      callback = verifyRepairRequest(req.body, req.headers, server.secret)
    } catch (err) {
      callbacks.push({ rejected: err })
      return res.status(400).json({ error: err.type })
    }
    // The official Standard Webhooks library accepts the same request.
    const payload = new Webhook(server.secret).verify(req.body.toString('utf8'), req.headers)
    callbacks.push({ callback, payload })
    try {
      await sp.success({
        provider: callback.event.provider,
        eventId: callback.event.event_id,
        reprocessId: callback.reprocess_id,
      })
      res.sendStatus(200)
    } catch {
      res.sendStatus(503) // SendPromptly will deliver the callback again
    }
  })
  repair = await listen(app)
})

after(async () => {
  repair?.close()
  await server?.stop()
})

test('the seed workflow: receipt, failure, incident, reprocess, repair callback, success', async () => {
  const { port } = repair.address()
  const project = await sp.updateProject({ repairUrl: `http://127.0.0.1:${port}/sendpromptly/repair` })
  assert.equal(project.repair_url, `http://127.0.0.1:${port}/sendpromptly/repair`)

  const receipt = await sp.receipt({
    provider: 'stripe',
    eventId: 'evt_node_1',
    eventType: 'invoice.paid',
    subject: 'cus_node',
    effect: 'credits.add',
    deadlineSeconds: 1800,
    metadata: { credits: 500 },
    occurredAt: new Date('2026-11-22T10:00:00Z'),
  })
  assert.equal(receipt.created, true)
  assert.equal(receipt.meta.status, 201)
  assert.match(receipt.meta.idempotencyKey, /^sp_idem_/)
  assert.ok(receipt.meta.requestId)
  assert.equal(receipt.event.state, 'awaiting_result')
  assert.equal(receipt.event.subject, 'cus_node')
  assert.equal(receipt.incident, null)

  // Stripe delivers the event again: a duplicate, not a second event.
  const duplicate = await sp.receipt({ provider: 'stripe', eventId: 'evt_node_1', eventType: 'invoice.paid' })
  assert.equal(duplicate.created, false)
  assert.equal(duplicate.event.deliveries, 2)

  const failed = await sp.failure({ provider: 'stripe', eventId: 'evt_node_1', error: new Error('tenant acct_42 not found') })
  assert.equal(failed.event.state, 'failed')
  assert.equal(failed.incident.state, 'open')
  assert.equal(failed.incident.kind, 'failed_result')
  const incidentId = failed.incident.id
  assert.match(incidentId, /^inc_/)

  const open = await sp.listIncidents({ state: 'open', subject: 'cus_node' })
  assert.ok(open.data.some((incident) => incident.id === incidentId))

  const reprocess = await sp.reprocess(incidentId, { note: 'fixed the tenant mapping' })
  assert.match(reprocess.reprocess_id, /^rep_/)

  const resolved = await until('the incident to resolve', async () => {
    const detail = await sp.getIncident(incidentId)
    return detail.incident.state === 'resolved' && detail
  })
  assert.equal(resolved.incident.resolution, 'success_result')
  assert.ok(resolved.timeline.length >= 4)

  const delivered = callbacks.find((c) => c.callback)
  assert.ok(delivered, 'the repair endpoint got a verified callback')
  assert.equal(delivered.callback.type, 'reprocess.requested')
  assert.equal(delivered.callback.reprocess_id, reprocess.reprocess_id)
  assert.equal(delivered.callback.incident_id, incidentId)
  assert.deepEqual(delivered.callback.event.metadata, { credits: 500 })
  assert.deepEqual(delivered.payload, delivered.callback)

  const event = await sp.getEvent('stripe', 'evt_node_1')
  assert.equal(event.event.state, 'succeeded')
  assert.equal(event.event.last_result.reprocess_id, reprocess.reprocess_id)

  const search = await sp.searchEvents({ subject: 'cus_node' })
  assert.ok(search.data.some((e) => e.event_id === 'evt_node_1'))
})

test('proof links are created, readable without a key, and revoked', async () => {
  await sp.receipt({ provider: 'shopify', eventId: 'node-proof-1', eventType: 'orders/paid' })
  const failed = await sp.result({ provider: 'shopify', eventId: 'node-proof-1', status: 'failure', error: 'out of stock' })
  const link = await sp.createProofLink(failed.incident.id, { expiresInSeconds: 3600 })
  assert.match(link.id, /^prf_/)
  assert.equal((await fetch(link.url)).status, 200)
  const links = await sp.listProofLinks(failed.incident.id)
  assert.equal(links.length, 1)
  await sp.revokeProofLink(link.id)
  assert.equal((await fetch(link.url)).status, 404)

  const manual = await sp.resolve(failed.incident.id, { note: 'refunded by hand' })
  assert.equal(manual.incident.state, 'resolved')
  assert.equal(manual.incident.resolution, 'manual')
})

test('a custom event succeeds; success() and result() agree', async () => {
  await sp.receipt({ provider: 'custom', eventId: 'job-7', eventType: 'export.run' })
  const ok = await sp.success({ provider: 'custom', eventId: 'job-7', metadata: { rows: 10 } })
  assert.equal(ok.event.state, 'succeeded')
  const again = await sp.result({ provider: 'custom', eventId: 'job-7', status: 'success' })
  assert.equal(again.event.state, 'succeeded')
  const health = await sp.health()
  assert.equal(health.status, 'ok')
})

test('errors are typed: status, type, param, requestId', async () => {
  const wrongKey = new SendPromptly({ apiKey: 'sp_live_wrong', baseUrl: server.url })
  const auth = await wrongKey.receipt({ provider: 'stripe', eventId: 'evt_x', eventType: 'invoice.paid' }).catch((e) => e)
  assert.ok(auth instanceof AuthenticationError, auth)
  assert.ok(auth instanceof SendPromptlyError)
  assert.equal(auth.status, 401)
  assert.equal(auth.attempts, 1)
  assert.ok(auth.requestId)
  assert.equal(typeof auth.type, 'string')

  const missing = await sp.getIncident('inc_doesnotexist').catch((e) => e)
  assert.ok(missing instanceof NotFoundError, missing)
  assert.equal(missing.status, 404)

  const invalid = await sp.receipt({ provider: 'stripe', eventId: '', eventType: 'invoice.paid' }).catch((e) => e)
  assert.ok(invalid instanceof ValidationError, invalid)
  assert.equal(invalid.param, 'event_id')
  assert.equal(invalid.attempts, 0)

  const provider = await sp.success({ provider: 'paypal', eventId: 'x' }).catch((e) => e)
  assert.ok(provider instanceof ValidationError)
  assert.equal(provider.param, 'provider')

  const shape = await sp.receipt({ eventId: 'x' }).catch((e) => e)
  assert.ok(shape instanceof ValidationError, shape)
  const none = await sp.receipt().catch((e) => e)
  assert.ok(none instanceof ValidationError, none)
  const cyclic = {}
  cyclic.self = cyclic
  const meta = await sp.receipt({ provider: 'custom', eventId: 'c', eventType: 't', metadata: cyclic }).catch((e) => e)
  assert.ok(meta instanceof ValidationError)
  assert.equal(meta.param, 'metadata')
})

test('a tampered repair callback is refused by the endpoint', async () => {
  const { port } = repair.address()
  const body = JSON.stringify({ type: 'reprocess.requested', reprocess_id: 'rep_x' })
  const res = await fetch(`http://127.0.0.1:${port}/sendpromptly/repair`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'webhook-id': 'rep_x',
      'webhook-timestamp': String(Math.floor(Date.now() / 1000)),
      'webhook-signature': 'v1,' + Buffer.alloc(32).toString('base64'),
    },
    body,
  })
  assert.equal(res.status, 400)
  const rejected = callbacks.find((c) => c.rejected)
  assert.ok(rejected.rejected instanceof InvalidSignatureError)
})
