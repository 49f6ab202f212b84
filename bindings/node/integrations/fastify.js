'use strict'
// Fastify (4 and 5) integration of SendPromptly: plugins that register a
// webhook route with a raw-body parser in their own encapsulated context
// (the app's JSON parsing elsewhere is untouched):
//
//   const { stripeWebhook, repairEndpoint } = require('sendpromptly/fastify')
//   app.register(stripeWebhook(sp, { path: '/webhooks/stripe' }, async (request, reply) => {
//     await queue(request.stripeEvent)
//     return { received: true }
//   }))
//   app.register(repairEndpoint(sp, { path: '/sendpromptly/repair', fulfil: (event) => applyEffect(event) }))

const { PROVIDERS, needClient, needFunction, acceptWebhook, handleRepair } = require('./common.js')

function rawBodyParser(fastify) {
  fastify.removeAllContentTypeParsers()
  fastify.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body))
}

function webhook(provider, sp, options, handler) {
  needClient(sp, `${provider}Webhook(sp, options, handler)`)
  needFunction(handler, `${provider}Webhook(sp, options, handler): handler`)
  const { property } = PROVIDERS[provider]
  const path = options?.path ?? `/webhooks/${provider}`
  return async function sendpromptlyWebhook(fastify) {
    rawBodyParser(fastify)
    fastify.decorateRequest(property, null)
    fastify.decorateRequest('sendpromptlyReceipt', null)
    fastify.post(path, async (request, reply) => {
      const accepted = await acceptWebhook(sp, provider, request.body ?? Buffer.alloc(0), request.headers, options ?? {})
      if (accepted.status) return reply.code(accepted.status).send(accepted.body)
      request[property] = accepted.event
      request.sendpromptlyReceipt = accepted.receipt
      return handler(request, reply)
    })
  }
}

/** Plugin: `POST options.path` (default `/webhooks/stripe`) verified, receipt sent, `request.stripeEvent` set. */
const stripeWebhook = (sp, options, handler) => webhook('stripe', sp, options, handler)
/** Plugin: `POST options.path` (default `/webhooks/shopify`) verified, receipt sent, `request.shopifyDelivery` set. */
const shopifyWebhook = (sp, options, handler) => webhook('shopify', sp, options, handler)

/** Plugin: the repair endpoint at `options.path` (default `/sendpromptly/repair`). */
function repairEndpoint(sp, options = {}) {
  needClient(sp, 'repairEndpoint(sp, options)')
  needFunction(options.fulfil, 'repairEndpoint(sp, { fulfil }): fulfil')
  return async function sendpromptlyRepair(fastify) {
    rawBodyParser(fastify)
    fastify.post(options.path ?? '/sendpromptly/repair', async (request, reply) => {
      const answer = await handleRepair(sp, request.body ?? Buffer.alloc(0), request.headers, options)
      return reply.code(answer.status).send(answer.body)
    })
  }
}

module.exports = { stripeWebhook, shopifyWebhook, repairEndpoint }
