'use strict'
// sendpromptly/express on a real Express server (see integration-scenario.js).

const express = require('express')
const { stripeWebhook, shopifyWebhook, repairEndpoint } = require('sendpromptly/express')
const { runScenario } = require('./integration-scenario.js')

runScenario('express', async (sp, app) => {
  const web = express()
  // A JSON parser on the rest of the app must not get in the webhooks' way.
  web.use('/api', express.json())
  const receipt = app.receipt
  web.post('/webhooks/stripe', stripeWebhook(sp, { secret: app.stripeSecret, receipt }), async (req, res) => {
    res.json(await app.stripe(req.stripeEvent))
  })
  web.post('/webhooks/shopify', shopifyWebhook(sp, { secret: app.shopifySecret, receipt }), async (req, res) => {
    res.json(await app.shopify(req.shopifyDelivery))
  })
  web.post('/sendpromptly/repair', repairEndpoint(sp, { secret: app.signingSecret, fulfil: (event) => app.fulfil(event) }))
  const server = await new Promise((resolve) => {
    const s = web.listen(0, '127.0.0.1', () => resolve(s))
  })
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    close: () => new Promise((resolve) => server.close(resolve)),
  }
})

const { test } = require('node:test')
const assert = require('node:assert/strict')
const { SendPromptly } = require('..')
const h = require('./integration-helpers.js')

async function listen(web) {
  const server = await new Promise((resolve) => {
    const s = web.listen(0, '127.0.0.1', () => resolve(s))
  })
  return { url: `http://127.0.0.1:${server.address().port}`, close: () => new Promise((r) => server.close(r)) }
}

test('express: a Buffer from express.raw() is verified as is; a body express.json() already parsed is a 500 naming the fix', async () => {
  const sp = new SendPromptly({ apiKey: 'sp_live_unused', baseUrl: await h.closedPortUrl(), logger: h.memoryLogger(), retry: { totalBudgetMs: 300 } })
  const raw = express()
  raw.post('/hook', express.raw({ type: 'application/json' }), stripeWebhook(sp, { secret: h.STRIPE_SECRET }), (req, res) => res.json({ id: req.stripeEvent.id }))
  const parsed = express()
  parsed.use(express.json())
  parsed.post('/hook', stripeWebhook(sp, { secret: h.STRIPE_SECRET }), (req, res) => res.json({ id: req.stripeEvent.id }))
  for (const [web, status] of [[raw, 200], [parsed, 500]]) {
    const server = await listen(web)
    try {
      const { id, payload, header } = h.signedStripeEvent()
      const res = await fetch(`${server.url}/hook`, { method: 'POST', headers: { 'content-type': 'application/json', 'stripe-signature': header }, body: payload })
      const body = await res.json()
      assert.equal(res.status, status, JSON.stringify(body))
      if (status === 200) assert.equal(body.id, id)
      else assert.match(body.error, /raw request body.*express\.raw/s)
    } finally {
      await server.close()
    }
  }
})
