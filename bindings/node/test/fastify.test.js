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
