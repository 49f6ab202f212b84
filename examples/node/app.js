'use strict'
// An Express app whose payment webhooks are watched by SendPromptly, on the
// package's Express integration:
//
//   SENDPROMPTLY_API_KEY=sp_live_…  SENDPROMPTLY_URL=http://127.0.0.1:7700 \
//   SENDPROMPTLY_SIGNING_SECRET=whsec_…  STRIPE_WEBHOOK_SECRET=whsec_… \
//   SHOPIFY_API_SECRET=…  node app.js
//
// Then set the project's repair URL to http://<this host>:3000/sendpromptly/repair.
//
// What each route does underneath (verify, receipt, effect, result) is
// spelled out in docs/node.md ("What the integrations do").

const express = require('express')
const { SendPromptly } = require('sendpromptly')
const { stripeWebhook, shopifyWebhook, repairEndpoint } = require('sendpromptly/express')

const sp = new SendPromptly() // SENDPROMPTLY_API_KEY, SENDPROMPTLY_URL
// Shopify wants an answer within 5 s: queue its signals instead of waiting.
const background = sp.background({
  onDrop: (d) => console.warn(`SendPromptly dropped ${d.description}: ${d.reasonText}`, d.error?.message ?? ''),
})

// The business effects. They must be idempotent: a repair callback runs them again.
const credits = new Map()
async function addCredits(customer, amount, eventId) {
  if (!customer) throw new Error('the invoice has no customer')
  credits.set(`${customer}:${eventId}`, amount)
}
async function fulfilOrder(order) {
  if (!order.id) throw new Error('the order has no id')
}

// `success` when it resolves, `failure` (with the error) when it throws;
// SendPromptly being down never changes what it returns or throws.
const creditInvoice = sp.track(async (event) => addCredits(event.data.object.customer, 500, event.id))

const app = express()

// Stripe: verified (400 otherwise), receipt sent, then the effect, tracked.
app.post(
  '/webhooks/stripe',
  stripeWebhook(sp, { receipt: { effect: 'credits.add', metadata: { credits: 500 } } }), // STRIPE_WEBHOOK_SECRET
  async (req, res) => {
    await creditInvoice(req.stripeEvent).catch(() => {}) // the failure is reported: an incident, repaired later
    res.json({ received: true })
  },
)

// Shopify orders/paid: verified, both signals queued, answered at once.
app.post(
  '/webhooks/shopify',
  shopifyWebhook(sp, { background, receipt: { effect: 'order.fulfil' } }), // SHOPIFY_API_SECRET
  async (req, res) => {
    const delivery = req.shopifyDelivery
    try {
      await fulfilOrder(delivery.body)
      background.successFor(delivery)
    } catch (err) {
      background.failureFor(delivery, err)
    }
    res.sendStatus(200)
  },
)

// The repair endpoint: SendPromptly asks to process an event again. The
// callback is verified (400 when forged), the same effect runs, and its
// outcome is reported with the reprocess id.
app.post(
  '/sendpromptly/repair',
  repairEndpoint(sp, {
    // SENDPROMPTLY_SIGNING_SECRET
    fulfil: async (event) => {
      if (event.provider === 'stripe') return addCredits(event.subject, event.metadata?.credits ?? 0, event.event_id)
      if (event.provider === 'shopify') return fulfilOrder({ id: event.metadata?.object_id ?? event.event_id })
    },
  }),
)

if (require.main === module) {
  const server = app.listen(Number(process.env.PORT ?? 3000), () => console.log(`listening on ${server.address().port}`))
  process.on('SIGTERM', async () => {
    server.close()
    const stats = await background.shutdown(10_000)
    console.log(`SendPromptly: delivered ${stats.delivered}, dropped ${stats.dropped}`)
    process.exit(0)
  })
}

module.exports = { app, background }
