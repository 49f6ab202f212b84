'use strict'
// Express (4 and 5) integration of SendPromptly:
//
//   const { stripeWebhook, shopifyWebhook, repairEndpoint } = require('sendpromptly/express')
//   app.post('/webhooks/stripe', stripeWebhook(sp), (req, res) => { queue(req.stripeEvent); res.json({ received: true }) })
//   app.post('/sendpromptly/repair', repairEndpoint(sp, { fulfil: (event) => applyEffect(event) }))
//
// The middleware reads the raw body itself (or takes the Buffer of
// `express.raw()`), verifies the signature (400 when it does not match),
// sends the receipt (never failing the request) and puts the verified
// event on `req`.

const { PROVIDERS, needClient, needFunction, readBody, acceptWebhook, handleRepair } = require('./common.js')

async function rawBody(req) {
  if (Buffer.isBuffer(req.body) || typeof req.body === 'string') return req.body
  // A body parser already consumed the stream: hand its object to the verifier, which names the mistake.
  if (req.body !== undefined && req.body !== null && req.readableEnded) return req.body
  return readBody(req)
}

function webhook(provider, sp, options = {}) {
  needClient(sp, `${provider}Webhook(sp, options)`)
  const { property } = PROVIDERS[provider]
  return async function sendpromptlyWebhook(req, res, next) {
    let accepted
    try {
      accepted = await acceptWebhook(sp, provider, await rawBody(req), req.headers, options)
    } catch (err) {
      return next(err)
    }
    if (accepted.status) return res.status(accepted.status).json(accepted.body)
    req[property] = accepted.event
    req.sendpromptlyReceipt = accepted.receipt
    next()
  }
}

/** Middleware: verifies a Stripe webhook, sends its receipt, sets `req.stripeEvent`. */
const stripeWebhook = (sp, options) => webhook('stripe', sp, options)
/** Middleware: verifies a Shopify webhook, sends its receipt, sets `req.shopifyDelivery`. */
const shopifyWebhook = (sp, options) => webhook('shopify', sp, options)

/** Handler of the repair endpoint: verify, `fulfil(event, callback)`, report with the `reprocess_id`. */
function repairEndpoint(sp, options = {}) {
  needClient(sp, 'repairEndpoint(sp, options)')
  needFunction(options.fulfil, 'repairEndpoint(sp, { fulfil }): fulfil')
  return async function sendpromptlyRepair(req, res, next) {
    try {
      const answer = await handleRepair(sp, await rawBody(req), req.headers, options)
      res.status(answer.status).json(answer.body)
    } catch (err) {
      next(err)
    }
  }
}

module.exports = { stripeWebhook, shopifyWebhook, repairEndpoint }
