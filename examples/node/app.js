'use strict'
// An Express app whose payment webhooks are watched by SendPromptly.
//
//   SENDPROMPTLY_API_KEY=sp_live_…  SENDPROMPTLY_URL=http://127.0.0.1:7700 \
//   SENDPROMPTLY_SIGNING_SECRET=whsec_…  STRIPE_WEBHOOK_SECRET=whsec_… \
//   SHOPIFY_API_SECRET=…  node app.js
//
// Then set the project's repair URL to http://<this host>:3000/sendpromptly/repair.

const express = require('express')
const { SendPromptly, stripe, shopify, verifyRepairRequest, SignatureVerificationError } = require('sendpromptly')

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
async function applyEffect(provider, eventType, subject, metadata, eventId) {
  if (provider === 'stripe') return addCredits(subject, metadata?.credits ?? 0, eventId)
  if (provider === 'shopify') return fulfilOrder({ id: metadata?.order_id ?? eventId })
}

const app = express()

// Stripe: the raw body is required to check the signature.
app.post('/webhooks/stripe', express.raw({ type: 'application/json' }), async (req, res) => {
  let event
  try {
    event = stripe.verify(req.body, req.headers['stripe-signature'], process.env.STRIPE_WEBHOOK_SECRET)
  } catch (err) {
    return res.status(400).send(`Webhook Error: ${err.message}`)
  }
  const ref = { provider: 'stripe', eventId: event.id }
  const subject = event.data.object.customer ?? undefined
  const metadata = { credits: 500, object_id: event.data.object.id }
  // 1. Receipt: never fail the webhook because SendPromptly is unreachable.
  await sp
    .receipt({ ...ref, eventType: event.type, subject, effect: 'credits.add', metadata, occurredAt: new Date(event.created * 1000) })
    .catch((err) => console.warn('SendPromptly receipt not recorded:', err.message))
  // 2. The effect, then the result.
  try {
    await addCredits(subject, metadata.credits, event.id)
    await sp.success(ref).catch((err) => console.warn('SendPromptly result not recorded:', err.message))
  } catch (effectError) {
    await sp.failure({ ...ref, error: effectError }).catch((err) => console.warn('SendPromptly result not recorded:', err.message))
  }
  res.json({ received: true })
})

// Shopify orders/paid: verify, queue both signals, answer at once.
app.post('/webhooks/shopify', express.raw({ type: 'application/json' }), async (req, res) => {
  let delivery
  try {
    delivery = shopify.verify(req.body, req.headers, process.env.SHOPIFY_API_SECRET)
  } catch (err) {
    return res.sendStatus(401)
  }
  const ref = { provider: 'shopify', eventId: delivery.dedupeId }
  const order = delivery.body
  background.receipt({
    ...ref,
    eventType: delivery.topic,
    subject: order.customer?.id != null ? String(order.customer.id) : undefined,
    effect: 'order.fulfil',
    // shopify.verify parses ids beyond 2^53 as BigInt, which JSON cannot carry: send them as strings.
    metadata: { order_id: String(order.id), total_price: order.total_price },
  })
  try {
    await fulfilOrder(order)
    background.success(ref)
  } catch (err) {
    background.failure({ ...ref, error: err })
  }
  res.sendStatus(200)
})

// The repair endpoint: SendPromptly asks to process an event again.
app.post('/sendpromptly/repair', express.raw({ type: 'application/json' }), async (req, res) => {
  let callback
  try {
    callback = verifyRepairRequest(req.body, req.headers, process.env.SENDPROMPTLY_SIGNING_SECRET)
  } catch (err) {
    if (err instanceof SignatureVerificationError) console.warn(`repair callback refused (${err.code}): ${err.message}`)
    return res.sendStatus(400)
  }
  const { provider, event_id: eventId, event_type: eventType, subject, metadata } = callback.event
  const ref = { provider, eventId, reprocessId: callback.reprocess_id }
  try {
    await applyEffect(provider, eventType, subject, metadata, eventId)
    await sp.success(ref)
  } catch (err) {
    await sp.failure({ ...ref, error: err }).catch(() => {})
    return res.sendStatus(500) // the callback is delivered again later
  }
  res.sendStatus(200)
})

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
