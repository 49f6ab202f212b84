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
