'use strict'
// Forward compatibility: this package reads a newer server's answers. A real
// answer of the current server, as a newer server would send it (a timeline
// entry of a kind this version does not know, by an actor of a new sort; an
// event state, incident kind and state, resolution, reprocess status and
// provider it does not know), is served on a loopback port; the client reads
// it and hands the new values to the caller as sent.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const http = require('node:http')
const { SendPromptly } = require('..')
const { startServer } = require('./server.js')

let server
let sp
let repair
let newer
const bodies = new Map()

function listen(handler) {
  return new Promise((resolve) => {
    const srv = http.createServer(handler).listen(0, '127.0.0.1', () => resolve(srv))
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

/** The server's own answer, as JSON (not through the SDK). */
async function rawGet(path) {
  const res = await fetch(`${server.url}${path}`, { headers: { authorization: `Bearer ${server.apiKey}` } })
  assert.equal(res.status, 200)
  return res.json()
}

/** `answer` with values only a newer server would send. */
function asNewerServer(answer) {
  answer.event.state = 'archived'
  answer.event.provider = 'paddle'
  answer.incident.kind = 'chargeback_lost'
  answer.incident.state = 'escalated'
  answer.incident.resolution = 'auto_closed'
  answer.incident.event.provider = 'paddle'
  answer.incident.reprocess.status = 'queued_for_review'
  answer.timeline.push({
    at: '2026-11-22T10:00:05.000Z',
    kind: 'payout.reconciled',
    actor: 'batch:bat_1',
    detail: { payout: 'po_1' },
  })
  return answer
}

before(async () => {
  server = await startServer()
  sp = new SendPromptly({ apiKey: server.apiKey, baseUrl: server.url })
  // A repair endpoint that accepts every callback and reports nothing.
  repair = await listen((req, res) => {
    req.resume()
    req.on('end', () => res.writeHead(200).end('{}'))
  })
  await sp.updateProject({ repairUrl: `http://127.0.0.1:${repair.address().port}/repair` })
  // The newer server: each GET path answers the body set for it.
  newer = await listen((req, res) => {
    const body = bodies.get(req.url)
    res.writeHead(body ? 200 : 404, { 'content-type': 'application/json' })
    res.end(body ?? '{"error":{"type":"not_found","message":"no"}}')
  })
})

after(async () => {
  repair?.close()
  newer?.close()
  await server?.stop()
})

test('an older client reads a newer server\'s event and incident', async () => {
  const eventId = `evt_node_forward_${Date.now()}`
  await sp.receipt({ provider: 'stripe', eventId, eventType: 'invoice.paid' })
  await sp.failure({ provider: 'stripe', eventId, error: 'boom' })
  const incidentId = (await sp.getEvent('stripe', eventId)).incident.id
  await sp.reprocess(incidentId, { note: 'forward compatibility' })
  await until('the callback delivered', async () =>
    (await sp.getIncident(incidentId)).incident.reprocess?.status === 'delivered')
  bodies.set(`/v1/events/stripe/${eventId}`, JSON.stringify(asNewerServer(await rawGet(`/v1/events/stripe/${eventId}`))))
  bodies.set(`/v1/incidents/${incidentId}`, JSON.stringify(asNewerServer(await rawGet(`/v1/incidents/${incidentId}`))))

  const older = new SendPromptly({ apiKey: server.apiKey, baseUrl: `http://127.0.0.1:${newer.address().port}` })
  for (const detail of [await older.getEvent('stripe', eventId), await older.getIncident(incidentId)]) {
    const newest = detail.timeline.at(-1)
    assert.equal(newest.kind, 'payout.reconciled')
    assert.equal(newest.actor, 'batch:bat_1')
    assert.deepEqual(newest.detail, { payout: 'po_1' })
    assert.equal(detail.timeline[0].kind, 'receipt.recorded')
    assert.equal(detail.event.state, 'archived')
    assert.equal(detail.event.provider, 'paddle')
    assert.equal(detail.incident.kind, 'chargeback_lost')
    assert.equal(detail.incident.state, 'escalated')
    assert.equal(detail.incident.resolution, 'auto_closed')
    assert.equal(detail.incident.event.provider, 'paddle')
    assert.equal(detail.incident.reprocess.status, 'queued_for_review')
    assert.match(detail.incident.reprocess.requested_by, /^api_key:/)
  }
})
