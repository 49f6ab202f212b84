'use strict'
// Bulk reprocess (outage recovery) from Node against a real `sendpromptly
// serve`: real incidents, an Express repair endpoint that verifies each
// callback and reports success; plan, start, follow and cancel a batch.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const http = require('node:http')
const express = require('express')
const { SendPromptly, verifyRepairRequest, InvalidRequestError, NotFoundError, ValidationError } = require('..')
const { startServer } = require('./server.js')

let server
let sp
let repair
const calledBack = []

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
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

let counter = 0
function unique(prefix) {
  counter += 1
  return `${prefix}${process.pid}_${Date.now()}_${counter}`
}

/** `count` open failed-result incidents of a fresh event type. */
async function openIncidents(eventType, count) {
  const ids = []
  for (let i = 0; i < count; i++) {
    const eventId = unique('evt_node_batch_')
    await sp.receipt({ provider: 'stripe', eventId, eventType, subject: `cus_batch_${i}` })
    const failed = await sp.failure({ provider: 'stripe', eventId, error: 'queue worker down' })
    ids.push(failed.incident.id)
  }
  return ids
}

before(async () => {
  server = await startServer()
  sp = new SendPromptly({ apiKey: server.apiKey, baseUrl: server.url })
  const app = express()
  app.post('/sendpromptly/repair', express.raw({ type: 'application/json' }), async (req, res) => {
    let callback
    try {
      callback = verifyRepairRequest(req.body, req.headers, server.secret)
    } catch (err) {
      return res.status(400).json({ error: err.type })
    }
    calledBack.push(callback.incident_id)
    try {
      await sp.success({ provider: callback.event.provider, eventId: callback.event.event_id, reprocessId: callback.reprocess_id })
      res.sendStatus(200)
    } catch {
      res.sendStatus(503)
    }
  })
  repair = await listen(app)
  await sp.updateProject({ repairUrl: `http://127.0.0.1:${repair.address().port}/sendpromptly/repair` })
})

after(async () => {
  repair?.close()
  await server?.stop()
})

test('plan, start and follow a batch until every incident is resolved', async () => {
  const eventType = unique('invoice.paid.node_')
  const openedAfter = new Date(Date.now() - 60_000)
  const incidents = await openIncidents(eventType, 3)
  const window = { openedAfter, openedBefore: new Date(Date.now() + 60_000).toISOString() }

  const plan = await sp.planReprocessBatch({ eventType, state: 'open', ...window })
  assert.equal(plan.dry_run, true)
  assert.deepEqual([plan.total, plan.to_send, plan.skipped], [3, 3, 0])
  assert.deepEqual(plan.by_event_type, { [eventType]: 3 })
  assert.deepEqual(plan.incidents.map((i) => i.incident_id).sort(), [...incidents].sort())
  assert.ok(plan.incidents.every((i) => i.state === 'pending'))
  assert.ok(!incidents.some((id) => calledBack.includes(id)), 'a dry run sends nothing')

  const batch = await sp.startReprocessBatch({ eventType, state: 'open', ...window, ratePerSecond: 50, concurrency: 2, note: 'after the outage' })
  assert.match(batch.id, /^rpb_/)
  assert.equal(batch.rate_per_second, 50)
  assert.equal(batch.concurrency, 2)
  assert.equal(batch.note, 'after the outage')
  assert.equal(batch.counts.total, 3)

  const done = await until('the batch to complete with every incident resolved', async () => {
    const view = await sp.reprocessBatch(batch.id)
    return view.state === 'completed' && view.counts.resolved === 3 && view
  })
  // The endpoint reports success before it answers: resolved, not delivered.
  assert.equal(done.counts.sent, 3)
  assert.equal(done.counts.in_flight, 0)
  assert.equal(done.counts.failed, 0)
  assert.ok(done.items.every((i) => i.state === 'resolved' && i.reprocess_id.startsWith('rep_')))
  assert.deepEqual(incidents.filter((id) => calledBack.includes(id)).sort(), [...incidents].sort())
  const detail = await sp.getIncident(incidents[0])
  assert.equal(detail.incident.state, 'resolved')
  const notes = detail.timeline.filter((e) => e.kind === 'reprocess.requested').map((e) => e.detail.note ?? '')
  assert.ok(notes.some((n) => n.includes(batch.id) && n.includes('after the outage')), JSON.stringify(notes))

  const again = await sp.planReprocessBatch({ incidentIds: [...incidents, 'inc_doesnotexist'] })
  assert.equal(again.to_send, 0)
  assert.deepEqual(again.skipped_by_reason, { incident_resolved: 3, incident_not_found: 1 })
})

test('cancel: pending incidents are never sent', async () => {
  const incidents = await openIncidents(unique('invoice.paid.node_cancel_'), 4)
  // One callback per 100 s: the first may go at once, the others wait.
  const batch = await sp.startReprocessBatch({ incidentIds: incidents, ratePerSecond: 0.01 })
  const cancelled = await sp.cancelReprocessBatch(batch.id)
  assert.equal(cancelled.state, 'cancelled')
  assert.ok(cancelled.counts.cancelled >= 3, JSON.stringify(cancelled.counts))
  assert.equal(cancelled.counts.cancelled + cancelled.counts.sent, 4)
  assert.equal(cancelled.counts.pending, 0)
  const never = cancelled.items.filter((i) => i.state === 'cancelled').map((i) => i.incident_id)
  const later = await sp.reprocessBatch(batch.id)
  assert.equal(later.counts.cancelled, cancelled.counts.cancelled)
  for (const id of never) {
    assert.equal((await sp.getIncident(id)).incident.state, 'open')
    assert.ok(!calledBack.includes(id))
  }
})

test('bad batch options are typed errors', async () => {
  await assert.rejects(sp.planReprocessBatch({ incidentIds: ['inc_x'], eventType: 'invoice.paid' }), (err) => {
    assert.ok(err instanceof InvalidRequestError)
    assert.equal(err.status, 422)
    assert.equal(err.param, 'incident_ids')
    return true
  })
  await assert.rejects(sp.startReprocessBatch({ eventType: 'x', concurrency: 500 }), (err) => err instanceof InvalidRequestError && err.param === 'concurrency')
  await assert.rejects(sp.startReprocessBatch({ eventType: 'x', concurrency: 2.5 }), (err) => err instanceof ValidationError && err.param === 'concurrency')
  await assert.rejects(sp.planReprocessBatch({ state: 'broken' }), (err) => err instanceof ValidationError && err.param === 'state')
  await assert.rejects(sp.planReprocessBatch({ openedAfter: new Date('nope') }), (err) => err instanceof ValidationError && err.param === 'opened_after')
  await assert.rejects(sp.planReprocessBatch({ openedAfter: 'yesterday' }), (err) => err instanceof ValidationError && err.param === 'opened_after')
  await assert.rejects(sp.planReprocessBatch('invoice.paid'), ValidationError)
  await assert.rejects(sp.reprocessBatch('rpb_doesnotexist'), NotFoundError)
})
