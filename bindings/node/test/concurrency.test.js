'use strict'
// Many calls in flight at once, the event loop free while they wait, the
// time budget against a server that never answers, and background mode.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const net = require('node:net')
const { SendPromptly, TimeoutError, ConnectionError, AuthenticationError } = require('..')
const { startServer } = require('./server.js')

let server
let sp

before(async () => {
  server = await startServer()
  sp = new SendPromptly({ apiKey: server.apiKey, baseUrl: server.url, retry: { totalBudgetMs: 20_000, attemptTimeoutMs: 10_000 } })
})

after(async () => {
  await server?.stop()
})

test('200 receipts and results in flight at once', async () => {
  const ids = Array.from({ length: 200 }, (_, i) => `evt_conc_${i}`)
  const receipts = await Promise.all(
    ids.map((eventId) => sp.receipt({ provider: 'stripe', eventId, eventType: 'invoice.paid', subject: 'cus_conc' })),
  )
  assert.ok(receipts.every((r) => r.created))
  assert.equal(new Set(receipts.map((r) => r.meta.idempotencyKey)).size, 200)
  const results = await Promise.all(ids.map((eventId) => sp.success({ provider: 'stripe', eventId })))
  assert.ok(results.every((r) => r.event.state === 'succeeded'))
})

test('the event loop keeps running while calls wait, and the budget bounds them', async () => {
  // A server that accepts connections and never answers.
  const sockets = []
  const silent = net.createServer((socket) => sockets.push(socket))
  await new Promise((resolve) => silent.listen(0, '127.0.0.1', resolve))
  const slow = new SendPromptly({
    apiKey: 'sp_live_whatever',
    baseUrl: `http://127.0.0.1:${silent.address().port}`,
    retry: { totalBudgetMs: 800, attemptTimeoutMs: 300, maxAttempts: 5 },
  })
  let ticks = 0
  const ticker = setInterval(() => ticks++, 10)
  const started = Date.now()
  const errors = await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      slow.receipt({ provider: 'custom', eventId: `slow-${i}`, eventType: 'job.run' }).then(
        () => null,
        (err) => err,
      ),
    ),
  )
  const elapsed = Date.now() - started
  clearInterval(ticker)
  for (const s of sockets) s.destroy()
  silent.close()
  for (const err of errors) {
    assert.ok(err instanceof TimeoutError, err)
    assert.ok(err instanceof ConnectionError)
    assert.ok(err.retryable)
    assert.ok(err.attempts >= 2, `attempts ${err.attempts}`)
  }
  assert.ok(elapsed < 3000, `took ${elapsed} ms, budget 800 ms`)
  assert.ok(ticks >= elapsed / 10 / 3, `only ${ticks} timer ticks in ${elapsed} ms: the event loop was blocked`)
})

test('background mode delivers, reports drops to onDrop, and shuts down', async () => {
  const dropped = []
  const background = sp.background({ capacity: 1000, concurrency: 8, onDrop: (d) => dropped.push(d) })
  for (let i = 0; i < 100; i++) {
    assert.equal(background.receipt({ provider: 'custom', eventId: `bg-${i}`, eventType: 'job.run' }), true)
  }
  assert.equal(await background.flush(20_000), true)
  for (let i = 0; i < 100; i++) background.success({ provider: 'custom', eventId: `bg-${i}` })
  // Invalid: dropped at once, reported.
  assert.equal(background.receipt({ provider: 'custom', eventId: '', eventType: 'job.run' }), false)
  const stats = await background.shutdown(20_000)
  assert.equal(stats.delivered, 200)
  assert.equal(stats.droppedInvalid, 1)
  assert.equal(stats.pending, 0)
  assert.equal(background.success({ provider: 'custom', eventId: 'bg-late' }), false)
  await new Promise((resolve) => setTimeout(resolve, 100))
  assert.deepEqual(dropped.map((d) => d.reason).sort(), ['closed', 'invalid'])
  assert.match(dropped[0].idempotencyKey, /^sp_idem_/)
  assert.ok((await sp.getEvent('custom', 'bg-99')).event.state === 'succeeded')
})

test('background mode reports rejected signals with the typed error; a throwing onDrop is harmless', async () => {
  const wrong = new SendPromptly({ apiKey: 'sp_live_wrong', baseUrl: server.url })
  const dropped = []
  const background = wrong.background({
    onDrop: (d) => {
      dropped.push(d)
      throw new Error('a bug in the callback')
    },
  })
  const warnings = []
  const onWarning = (w) => warnings.push(w)
  process.on('warning', onWarning)
  background.receipt({ provider: 'custom', eventId: 'rejected-1', eventType: 'job.run' })
  const stats = await background.shutdown(10_000)
  await new Promise((resolve) => setTimeout(resolve, 100))
  process.off('warning', onWarning)
  assert.equal(stats.rejected, 1)
  assert.equal(dropped.length, 1)
  assert.equal(dropped[0].reason, 'rejected')
  assert.equal(dropped[0].kind, 'receipt')
  assert.equal(dropped[0].signal.event_id, 'rejected-1')
  assert.ok(dropped[0].error instanceof AuthenticationError)
  assert.ok(warnings.some((w) => /onDrop callback threw/.test(w.message)))
})
