'use strict'
// receiptFor/successFor/failureFor and sp.track against a real
// `sendpromptly serve`, with a Stripe event signed by the official
// `stripe` package and a Shopify delivery signed like Shopify; and with
// the server down, track returns (or rethrows) exactly what the app's
// function did, logging instead of throwing.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { SendPromptly, stripe, shopify, eventReference, ValidationError } = require('..')
const { startServer } = require('./server.js')
const h = require('./integration-helpers.js')

let server
let sp
let api
const logger = h.memoryLogger()

before(async () => {
  server = await startServer()
  sp = new SendPromptly({ apiKey: server.apiKey, baseUrl: server.url, logger })
  api = h.apiOf(server)
})
after(async () => {
  if (server) await server.stop()
})

function verifiedStripe(options) {
  const { payload, header } = h.signedStripeEvent(options)
  return stripe.verify(payload, header, h.STRIPE_SECRET)
}

test('receiptFor fills the receipt from a verified Stripe event; successFor closes it', async () => {
  const event = verifiedStripe({ customer: 'cus_receipt_for', amount: 1234 })
  const recorded = await sp.receiptFor(event, { effect: 'credits.add', metadata: { credits: 500 } })
  assert.equal(recorded.created, true)
  const view = (await api('GET', `/v1/events/stripe/${event.id}`)).body
  assert.equal(view.event.event_type, 'invoice.paid')
  assert.equal(view.event.subject, 'cus_receipt_for')
  assert.equal(view.event.effect, 'credits.add')
  assert.equal(view.event.metadata.credits, 500)
  assert.equal(view.event.metadata.object_id, `in_${event.id}`)
  assert.equal(view.event.metadata.amount, 1234)
  await sp.successFor(event)
  assert.equal((await api('GET', `/v1/events/stripe/${event.id}`)).body.event.state, 'succeeded')
})

test('receiptFor and failureFor from a verified Shopify delivery (ids beyond 2^53 kept)', async () => {
  const d = h.signedShopifyDelivery({ customer: '115310627314723951' })
  const delivery = shopify.verify(d.body, d.headers, h.SHOPIFY_SECRET)
  assert.deepEqual(eventReference(delivery), { provider: 'shopify', eventId: d.id })
  await sp.receiptFor(delivery)
  await sp.failureFor(delivery, 'inventory service down')
  const view = (await api('GET', `/v1/events/shopify/${d.id}`)).body
  assert.equal(view.event.event_type, 'orders/paid')
  assert.equal(view.event.subject, '115310627314723951')
  assert.equal(view.event.state, 'failed')
  assert.equal(view.incident.kind, 'failed_result')
})

test('the *For methods refuse what is not an event, naming what they take', async () => {
  await assert.rejects(sp.successFor({ hello: 'world' }), (err) => {
    assert.ok(err instanceof ValidationError, String(err))
    assert.match(err.message, /verified Stripe event/)
    return true
  })
  await assert.rejects(sp.receiptFor({ provider: 'stripe', eventId: 'evt_x' }), /eventType/)
  const copy = { ...shopify.verify(h.signedShopifyDelivery().body, h.signedShopifyDelivery().headers, h.SHOPIFY_SECRET) }
  await assert.rejects(sp.successFor(copy), /pass the object it returned/)
})

test('track(ref, fn): success on resolve, the value returned', async () => {
  const event = verifiedStripe()
  await sp.receiptFor(event)
  const value = await sp.track(event, async () => 42)
  assert.equal(value, 42)
  assert.equal((await api('GET', `/v1/events/stripe/${event.id}`)).body.event.state, 'succeeded')
})

test('track(fn): failure with the error type and message, the same error rethrown', async () => {
  const event = verifiedStripe()
  await sp.receiptFor(event)
  class PaymentDeclined extends Error {}
  const thrown = new PaymentDeclined('card declined for cus_x')
  const applyCredits = sp.track(async (ev, credits) => {
    assert.equal(credits, 7)
    throw thrown
  })
  await assert.rejects(applyCredits(event, 7), (err) => err === thrown)
  const view = (await api('GET', `/v1/events/stripe/${event.id}`)).body
  assert.equal(view.event.state, 'failed')
  assert.equal(view.incident.kind, 'failed_result')
  const failure = view.timeline.find((entry) => JSON.stringify(entry).includes('card declined'))
  assert.ok(failure, JSON.stringify(view.timeline))
  assert.match(JSON.stringify(failure), /PaymentDeclined: card declined for cus_x/)
})

test('track with `event` picks the reference from the arguments; a non-Error throw is reported too', async () => {
  const event = verifiedStripe()
  await sp.receiptFor(event)
  const job = sp.track(async (_name, data) => Promise.reject('plain string'), { event: (_name, data) => data.ref })
  await assert.rejects(job('credits', { ref: eventReference(event) }), (err) => err === 'plain string')
  const view = (await api('GET', `/v1/events/stripe/${event.id}`)).body
  assert.equal(view.event.state, 'failed')
  assert.match(JSON.stringify(view.timeline), /string: plain string/)
})

test('track without a usable reference runs the function and only logs', async () => {
  logger.lines.length = 0
  assert.equal(await sp.track({ nothing: true }, () => 'ran'), 'ran')
  assert.match(logger.lines.join('\n'), /no event reference/)
})

for (const [what, target] of [
  ['closed port', async () => ({ url: await h.closedPortUrl(), close: async () => {} })],
  ['server that never answers', h.blackHole],
]) {
  test(`server down (${what}): track returns and rethrows what the app did, and logs`, { timeout: 30_000 }, async () => {
    const down = await target()
    const lines = h.memoryLogger()
    const offline = new SendPromptly({ apiKey: server.apiKey, baseUrl: down.url, logger: lines, retry: { totalBudgetMs: 800 } })
    const ref = { provider: 'stripe', eventId: h.uniqueId('evt_down') }
    try {
      assert.equal(await offline.track(ref, async () => 'done'), 'done')
      const thrown = new RangeError('app failure')
      await assert.rejects(offline.track(ref, async () => { throw thrown }), (err) => err === thrown)
      assert.equal(lines.lines.length, 2, lines.lines.join('\n'))
      assert.match(lines.lines[0], /result for stripe\/evt_down\S+ not recorded/)
    } finally {
      await down.close()
    }
  })
}
