'use strict'
// sendpromptly/fastify on a real Fastify server (see integration-scenario.js).

const Fastify = require('fastify')
const { stripeWebhook, shopifyWebhook, repairEndpoint } = require('sendpromptly/fastify')
const { runScenario } = require('./integration-scenario.js')

runScenario('fastify', async (sp, app) => {
  const web = Fastify()
  const receipt = app.receipt
  web.register(stripeWebhook(sp, { secret: app.stripeSecret, receipt }, (request) => app.stripe(request.stripeEvent)))
  web.register(shopifyWebhook(sp, { secret: app.shopifySecret, receipt }, (request) => app.shopify(request.shopifyDelivery)))
  web.register(repairEndpoint(sp, { secret: app.signingSecret, fulfil: (event) => app.fulfil(event) }))
  // The app's own JSON routes keep Fastify's JSON parser.
  web.post('/api/echo', async (request) => request.body)
  const url = await web.listen({ port: 0, host: '127.0.0.1' })
  return { url, close: () => web.close() }
})

const { test } = require('node:test')
const assert = require('node:assert/strict')
const { SendPromptly } = require('..')
const h = require('./integration-helpers.js')

test("fastify: the webhook plugin's raw-body parser stays in its own context; the app's JSON routes still parse JSON", async () => {
  const sp = new SendPromptly({ apiKey: 'sp_live_unused', baseUrl: await h.closedPortUrl(), logger: h.memoryLogger(), retry: { totalBudgetMs: 300 } })
  const web = Fastify()
  web.register(stripeWebhook(sp, { secret: h.STRIPE_SECRET }, (request) => ({ id: request.stripeEvent.id })))
  web.post('/api/echo', async (request) => ({ parsed: request.body }))
  const url = await web.listen({ port: 0, host: '127.0.0.1' })
  try {
    const echo = await fetch(`${url}/api/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' })
    assert.deepEqual(await echo.json(), { parsed: { a: 1 } })
    const { id, payload, header } = h.signedStripeEvent()
    const res = await fetch(`${url}/webhooks/stripe`, { method: 'POST', headers: { 'content-type': 'application/json', 'stripe-signature': header }, body: payload })
    assert.deepEqual(await res.json(), { id })
  } finally {
    await web.close()
  }
})
