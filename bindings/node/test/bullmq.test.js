'use strict'
// sendpromptly/bullmq with a real Redis (SENDPROMPTLY_TEST_REDIS_URL, which
// scripts/test-node.sh starts) and a real `sendpromptly serve`: the webhook
// side sends the receipt and enqueues the job with the event reference; the
// wrapped worker reports the result from how the job ends. A job that
// fails once and succeeds on its 2nd attempt opens no incident; one that
// exhausts its attempts opens exactly one. With SendPromptly down the
// worker's jobs complete and fail exactly as they would have.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { Queue, Worker, UnrecoverableError } = require('bullmq')
const { SendPromptly, stripe } = require('..')
const { withEvent, track } = require('sendpromptly/bullmq')
const { startServer } = require('./server.js')
const h = require('./integration-helpers.js')

const REDIS = process.env.SENDPROMPTLY_TEST_REDIS_URL
const skip = REDIS
  ? false
  : process.env.SENDPROMPTLY_REQUIRE_REDIS === '1'
    ? false
    : 'no Redis: set SENDPROMPTLY_TEST_REDIS_URL (scripts/test-node.sh starts one)'
if (!REDIS && process.env.SENDPROMPTLY_REQUIRE_REDIS === '1') {
  throw new Error('SENDPROMPTLY_REQUIRE_REDIS=1 but SENDPROMPTLY_TEST_REDIS_URL is not set')
}

let server
let sp
let api
const connection = () => {
  const url = new URL(REDIS)
  return { host: url.hostname, port: Number(url.port), maxRetriesPerRequest: null }
}

before(async () => {
  if (skip) return
  server = await startServer()
  sp = new SendPromptly({ apiKey: server.apiKey, baseUrl: server.url, logger: h.memoryLogger() })
  api = h.apiOf(server)
})
after(async () => {
  if (server) await server.stop()
})

/** A queue and a worker running `processor` (wrapped by track(client, …)); `close()` stops both. */
function pipeline(client, processor) {
  const name = h.uniqueId('credits')
  const queue = new Queue(name, { connection: connection() })
  const worker = new Worker(name, track(client, processor), { connection: connection() })
  worker.on('error', () => {})
  return {
    queue,
    async close() {
      await worker.close()
      await queue.obliterate({ force: true })
      await queue.close()
    },
  }
}

/** What the webhook handler does: verify, receipt, enqueue with the event reference. */
async function webhookEnqueues(queue, customer, opts) {
  const { payload, header } = h.signedStripeEvent({ customer })
  const event = stripe.verify(payload, header, h.STRIPE_SECRET)
  await sp.receiptFor(event, { effect: 'credits.add' })
  const job = await queue.add('credits', withEvent(event, { customer }), { jobId: event.id, ...opts })
  return { event, job }
}

async function finished(queue, jobId) {
  return h.eventually(`job ${jobId} to finish`, async () => {
    const state = await (await queue.getJob(jobId)).getState()
    return (state === 'completed' || state === 'failed') && state
  })
}

async function incidentsOf(customer) {
  return (await api('GET', `/v1/incidents?subject=${customer}`)).body.data
}

test('a job that completes reports success', { skip }, async () => {
  const p = pipeline(sp, async (job) => `credited ${job.data.customer}`)
  try {
    const { event, job } = await webhookEnqueues(p.queue, h.uniqueId('cus_ok'))
    assert.equal(await finished(p.queue, job.id), 'completed')
    assert.equal((await p.queue.getJob(job.id)).returnvalue, `credited ${job.data.customer}`)
    const view = (await api('GET', `/v1/events/stripe/${event.id}`)).body
    assert.equal(view.event.state, 'succeeded')
    assert.equal(view.incident, null)
  } finally {
    await p.close()
  }
})

test('a job that fails its 1st attempt and succeeds on the 2nd opens no incident', { skip }, async () => {
  const p = pipeline(sp, async (job) => {
    if (job.attemptsMade === 0) throw new Error('ledger busy')
    return 'ok'
  })
  try {
    const customer = h.uniqueId('cus_retry')
    const { event, job } = await webhookEnqueues(p.queue, customer, { attempts: 3 })
    assert.equal(await finished(p.queue, job.id), 'completed')
    assert.equal((await p.queue.getJob(job.id)).attemptsMade, 2)
    const view = (await api('GET', `/v1/events/stripe/${event.id}`)).body
    assert.equal(view.event.state, 'succeeded')
    assert.equal(view.incident, null)
    assert.ok(!view.timeline.some((e) => e.kind === 'result.failure'), JSON.stringify(view.timeline))
    assert.deepEqual(await incidentsOf(customer), [])
  } finally {
    await p.close()
  }
})

test('a job that exhausts its attempts opens exactly one incident, with the last error', { skip }, async () => {
  const p = pipeline(sp, async (job) => {
    throw new Error(`ledger down (attempt ${job.attemptsMade + 1})`)
  })
  try {
    const customer = h.uniqueId('cus_exhausted')
    const { event, job } = await webhookEnqueues(p.queue, customer, { attempts: 3 })
    assert.equal(await finished(p.queue, job.id), 'failed')
    assert.equal((await p.queue.getJob(job.id)).attemptsMade, 3)
    const view = (await api('GET', `/v1/events/stripe/${event.id}`)).body
    assert.equal(view.event.state, 'failed')
    assert.equal(view.incident.kind, 'failed_result')
    const failures = view.timeline.filter((e) => e.kind === 'result.failure')
    assert.equal(failures.length, 1, JSON.stringify(view.timeline))
    assert.match(JSON.stringify(failures[0]), /Error: ledger down \(attempt 3\)/)
    assert.equal((await incidentsOf(customer)).length, 1)
  } finally {
    await p.close()
  }
})

test('an UnrecoverableError fails the job for good at once: one incident', { skip }, async () => {
  const p = pipeline(sp, async () => {
    throw new UnrecoverableError('customer deleted')
  })
  try {
    const customer = h.uniqueId('cus_unrecoverable')
    const { event, job } = await webhookEnqueues(p.queue, customer, { attempts: 5 })
    assert.equal(await finished(p.queue, job.id), 'failed')
    const view = (await api('GET', `/v1/events/stripe/${event.id}`)).body
    assert.equal(view.event.state, 'failed')
    assert.match(JSON.stringify(view.timeline), /UnrecoverableError: customer deleted/)
    assert.equal((await incidentsOf(customer)).length, 1)
  } finally {
    await p.close()
  }
})

test('with SendPromptly down, jobs complete and fail exactly as they would have', { skip, timeout: 60_000 }, async () => {
  for (const down of [{ url: await h.closedPortUrl(), close: async () => {} }, await h.blackHole()]) {
    const logger = h.memoryLogger()
    const offline = new SendPromptly({ apiKey: 'sp_live_unused', baseUrl: down.url, logger, retry: { totalBudgetMs: 800 } })
    const p = pipeline(offline, async (job) => {
      if (job.data.fail) throw new Error('app failure')
      return 'done'
    })
    try {
      const ok = await p.queue.add('credits', withEvent({ provider: 'stripe', eventId: h.uniqueId('evt_down') }, {}))
      const bad = await p.queue.add('credits', withEvent({ provider: 'stripe', eventId: h.uniqueId('evt_down') }, { fail: true }), { attempts: 2 })
      assert.equal(await finished(p.queue, ok.id), 'completed')
      assert.equal((await p.queue.getJob(ok.id)).returnvalue, 'done')
      assert.equal(await finished(p.queue, bad.id), 'failed')
      const failed = await p.queue.getJob(bad.id)
      assert.equal(failed.failedReason, 'app failure')
      assert.equal(failed.attemptsMade, 2)
      // One line per result the worker could not record: the success and the final failure.
      assert.equal(logger.lines.filter((l) => /not recorded/.test(l)).length, 2, logger.lines.join('\n'))
    } finally {
      await p.close()
      await down.close()
    }
  }
})
