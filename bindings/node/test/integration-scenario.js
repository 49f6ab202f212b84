'use strict'
// The same user-visible scenario for every web framework integration
// (Express, Fastify, Next.js route handlers): a real app on loopback with
// the integration's webhook routes and repair endpoint, against a real
// `sendpromptly serve`, with events signed by the official `stripe`
// package; then the same app with SendPromptly down.
//
// `mount(sp, app)` starts the framework's server with
//   POST /webhooks/stripe    the Stripe webhook integration, then app.stripe(event)
//   POST /webhooks/shopify   the Shopify webhook integration, then app.shopify(delivery)
//   POST /sendpromptly/repair  the repair integration with app.fulfil
// and resolves to `{ url, close() }`.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const crypto = require('node:crypto')
const { Webhook } = require('standardwebhooks')
const { SendPromptly } = require('..')
const { startServer } = require('./server.js')
const h = require('./integration-helpers.js')

/** The app's own code: the effect and how each handler applies it. */
function appFor(sp) {
  const applied = new Map()
  const fixes = new Map() // customers support filled in later
  const app = {
    applied,
    fixes,
    stripeSecret: h.STRIPE_SECRET,
    shopifySecret: h.SHOPIFY_SECRET,
    signingSecret: undefined,
    receipt: { effect: 'credits.add', metadata: { credits: 500 } },
    async addCredits(eventId, customer) {
      const who = customer ?? fixes.get(eventId)
      if (!who) throw new TypeError('the invoice has no customer')
      applied.set(eventId, who)
    },
    // The webhook handler applies the effect inline, tracked; a failure is reported, not retried by Stripe.
    async stripe(event) {
      await sp.track(event, () => app.addCredits(event.id, event.data.object.customer)).catch(() => {})
      return { received: true }
    },
    async shopify(delivery) {
      applied.set(delivery.dedupeId, String(delivery.body.customer.id))
      return { received: true }
    },
    async fulfil(event) {
      await app.addCredits(event.event_id, event.subject)
    },
  }
  return app
}

async function post(url, body, headers) {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body })
  const text = await res.text()
  let json = null
  try {
    json = JSON.parse(text)
  } catch {
    // not JSON
  }
  return { status: res.status, json, text }
}

function signedRepair(secret, event, { id = `rep_${crypto.randomUUID().replaceAll('-', '')}` } = {}) {
  const body = JSON.stringify({
    type: 'reprocess.requested',
    reprocess_id: id,
    incident_id: 'inc_offline',
    attempt: 1,
    requested_at: new Date().toISOString(),
    requested_by: 'console:test@example.com',
    event,
  })
  const at = new Date()
  return {
    body,
    headers: {
      'webhook-id': id,
      'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
      'webhook-signature': new Webhook(secret).sign(id, at, body),
    },
  }
}

function runScenario(framework, mount) {
  test(`${framework}: a missing webhook or signing secret is a 500 naming the setting`, async () => {
    const saved = {}
    for (const name of ['STRIPE_WEBHOOK_SECRET', 'SHOPIFY_WEBHOOK_SECRET', 'SHOPIFY_API_SECRET', 'SENDPROMPTLY_SIGNING_SECRET']) {
      saved[name] = process.env[name]
      delete process.env[name]
    }
    const sp = new SendPromptly({ apiKey: 'sp_live_unused', baseUrl: await h.closedPortUrl(), logger: h.memoryLogger(), retry: { totalBudgetMs: 300 } })
    const app = appFor(sp)
    app.stripeSecret = app.shopifySecret = undefined
    const web = await mount(sp, app)
    try {
      const { payload, header } = h.signedStripeEvent()
      const stripeRes = await post(`${web.url}/webhooks/stripe`, payload, { 'stripe-signature': header })
      assert.equal(stripeRes.status, 500, stripeRes.text)
      assert.match(stripeRes.json.error, /STRIPE_WEBHOOK_SECRET/)
      const d = h.signedShopifyDelivery()
      const shopifyRes = await post(`${web.url}/webhooks/shopify`, d.body, d.headers)
      assert.equal(shopifyRes.status, 500, shopifyRes.text)
      assert.match(shopifyRes.json.error, /SHOPIFY_WEBHOOK_SECRET or SHOPIFY_API_SECRET/)
      const repair = signedRepair('whsec_' + Buffer.alloc(32, 5).toString('base64'), { provider: 'stripe', event_id: 'evt_x', event_type: 'invoice.paid' })
      const repairRes = await post(`${web.url}/sendpromptly/repair`, repair.body, repair.headers)
      assert.equal(repairRes.status, 500, repairRes.text)
      assert.match(repairRes.json.error, /SENDPROMPTLY_SIGNING_SECRET/)
    } finally {
      await web.close()
      for (const [name, value] of Object.entries(saved)) if (value !== undefined) process.env[name] = value
    }
  })

  let server
  let api
  let sp
  let app
  let web

  before(async () => {
    server = await startServer()
    api = h.apiOf(server)
    sp = new SendPromptly({ apiKey: server.apiKey, baseUrl: server.url, logger: h.memoryLogger() })
    app = appFor(sp)
    app.signingSecret = server.secret
    web = await mount(sp, app)
    assert.equal((await api('PATCH', '/v1/project', { repair_url: `${web.url}/sendpromptly/repair` })).status, 200)
  })
  after(async () => {
    if (web) await web.close()
    if (server) await server.stop()
  })

  test(`${framework}: a signed Stripe event is verified, its receipt sent, the tracked effect reported`, async () => {
    const { id, payload, header } = h.signedStripeEvent({ customer: `cus_${framework}` })
    const res = await post(`${web.url}/webhooks/stripe`, payload, { 'stripe-signature': header })
    assert.equal(res.status, 200, res.text)
    assert.deepEqual(res.json, { received: true })
    assert.equal(app.applied.get(id), `cus_${framework}`)
    const view = (await api('GET', `/v1/events/stripe/${id}`)).body
    assert.equal(view.event.state, 'succeeded')
    assert.equal(view.event.effect, 'credits.add')
    assert.equal(view.event.subject, `cus_${framework}`)
    assert.equal(view.event.metadata.credits, 500)
    assert.equal(view.incident, null)
  })

  test(`${framework}: a forged or stale Stripe signature gets 400 and records nothing`, async () => {
    const forged = h.signedStripeEvent({ secret: 'whsec_not_the_endpoint_secret' })
    const res = await post(`${web.url}/webhooks/stripe`, forged.payload, { 'stripe-signature': forged.header })
    assert.equal(res.status, 400, res.text)
    assert.match(res.json.error, /signature/i)
    const unsigned = await post(`${web.url}/webhooks/stripe`, h.signedStripeEvent().payload, {})
    assert.equal(unsigned.status, 400, unsigned.text)
    assert.equal((await api('GET', `/v1/events/stripe/${forged.id}`)).status, 404)
    assert.equal(app.applied.has(forged.id), false)
  })

  test(`${framework}: a signed Shopify delivery is verified and its receipt sent; a bad HMAC gets 400`, async () => {
    const d = h.signedShopifyDelivery()
    const res = await post(`${web.url}/webhooks/shopify`, d.body, d.headers)
    assert.equal(res.status, 200, res.text)
    assert.equal(app.applied.get(d.id), '115310627314723950')
    const view = (await api('GET', `/v1/events/shopify/${d.id}`)).body
    assert.equal(view.event.event_type, 'orders/paid')
    assert.equal(view.event.effect, 'credits.add')
    const bad = h.signedShopifyDelivery({ secret: 'wrong' })
    assert.equal((await post(`${web.url}/webhooks/shopify`, bad.body, bad.headers)).status, 400)
    assert.equal((await api('GET', `/v1/events/shopify/${bad.id}`)).status, 404)
  })

  test(`${framework}: a failed effect opens an incident; the repair endpoint fulfils it and resolves it`, async () => {
    const { id, payload, header } = h.signedStripeEvent({ customer: null })
    assert.equal((await post(`${web.url}/webhooks/stripe`, payload, { 'stripe-signature': header })).status, 200)
    const failed = (await api('GET', `/v1/events/stripe/${id}`)).body
    assert.equal(failed.event.state, 'failed')
    assert.equal(failed.incident.kind, 'failed_result')
    assert.match(JSON.stringify(failed.timeline), /TypeError: the invoice has no customer/)

    // A repair that fails again: the failure is recorded with its reprocess_id, the incident stays.
    const first = await api('POST', `/v1/incidents/${failed.incident.id}/reprocess`, { note: `${framework} test, unfixed` })
    assert.equal(first.status, 202, JSON.stringify(first.body))
    const again = await h.eventually('the failed repair to be recorded with its reprocess_id', async () => {
      const r = await api('GET', `/v1/incidents/${failed.incident.id}`)
      const entry = r.body.timeline.find((e) => e.kind === 'result.failure' && e.detail.reprocess_id === first.body.reprocess_id)
      return entry && r.body.incident.reprocess.status === 'delivered' && entry
    })
    assert.equal(again.detail.error, 'TypeError: the invoice has no customer')
    assert.equal(app.applied.has(id), false)

    app.fixes.set(id, `cus_fixed_${framework}`)
    const rep = await api('POST', `/v1/incidents/${failed.incident.id}/reprocess`, { note: `${framework} test` })
    assert.equal(rep.status, 202, JSON.stringify(rep.body))
    const resolved = await h.eventually('the repair to resolve the incident', async () => {
      const r = await api('GET', `/v1/incidents/${failed.incident.id}`)
      return r.body.incident.state === 'resolved' && r.body
    })
    assert.equal(resolved.incident.resolution, 'success_result')
    assert.equal(app.applied.get(id), `cus_fixed_${framework}`)
    assert.match(JSON.stringify(resolved.timeline), new RegExp(rep.body.reprocess_id))

    const forged = signedRepair('whsec_' + Buffer.alloc(32, 9).toString('base64'), { provider: 'stripe', event_id: id, event_type: 'invoice.paid' })
    assert.equal((await post(`${web.url}/sendpromptly/repair`, forged.body, forged.headers)).status, 400)
  })

  test(`${framework}: with SendPromptly down every route answers as it would have`, { timeout: 60_000 }, async () => {
    for (const down of [{ url: await h.closedPortUrl(), close: async () => {} }, await h.blackHole()]) {
      const logger = h.memoryLogger()
      const offline = new SendPromptly({ apiKey: server.apiKey, baseUrl: down.url, logger, retry: { totalBudgetMs: 800 } })
      const offlineApp = appFor(offline)
      offlineApp.signingSecret = 'whsec_' + Buffer.alloc(32, 5).toString('base64')
      const offlineWeb = await mount(offline, offlineApp)
      try {
        const ok = h.signedStripeEvent({ customer: 'cus_offline' })
        const res = await post(`${offlineWeb.url}/webhooks/stripe`, ok.payload, { 'stripe-signature': ok.header })
        assert.equal(res.status, 200, res.text)
        assert.deepEqual(res.json, { received: true })
        assert.equal(offlineApp.applied.get(ok.id), 'cus_offline')

        const failing = h.signedStripeEvent({ customer: null })
        assert.equal((await post(`${offlineWeb.url}/webhooks/stripe`, failing.payload, { 'stripe-signature': failing.header })).status, 200)

        const forged = h.signedStripeEvent({ secret: 'whsec_not_the_endpoint_secret' })
        assert.equal((await post(`${offlineWeb.url}/webhooks/stripe`, forged.payload, { 'stripe-signature': forged.header })).status, 400)

        const d = h.signedShopifyDelivery()
        assert.equal((await post(`${offlineWeb.url}/webhooks/shopify`, d.body, d.headers)).status, 200)

        const repaired = signedRepair(offlineApp.signingSecret, { provider: 'stripe', event_id: 'evt_offline_repair', event_type: 'invoice.paid', subject: 'cus_r' })
        // The effect is applied, but its result cannot be recorded: 503 so that SendPromptly calls again.
        const repair = await post(`${offlineWeb.url}/sendpromptly/repair`, repaired.body, repaired.headers)
        assert.equal(repair.status, 503, repair.text)
        assert.equal(offlineApp.applied.get('evt_offline_repair'), 'cus_r')
        const unfixable = signedRepair(offlineApp.signingSecret, { provider: 'stripe', event_id: 'evt_offline_bad', event_type: 'invoice.paid' })
        assert.equal((await post(`${offlineWeb.url}/sendpromptly/repair`, unfixable.body, unfixable.headers)).status, 503)

        assert.match(logger.lines.join('\n'), /not recorded/)
      } finally {
        await offlineWeb.close()
        await down.close()
      }
    }
  })
}

module.exports = { runScenario }
