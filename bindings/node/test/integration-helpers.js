'use strict'
// Shared by the integration tests: Stripe events signed by the official
// `stripe` package, Shopify deliveries signed like Shopify, the server's
// view of an event, a loopback port where nothing listens and one where a
// server accepts connections and never answers.

const crypto = require('node:crypto')
const net = require('node:net')
const Stripe = require('stripe')

const official = new Stripe('sk_test_not_used_for_any_call')
const STRIPE_SECRET = 'whsec_node_integrations_stripe_secret'
const SHOPIFY_SECRET = 'shopify_node_integrations_secret'

let counter = 0
/** A unique event id with `prefix`. */
function uniqueId(prefix) {
  counter += 1
  return `${prefix}_${process.pid}_${Date.now()}_${counter}`
}

/** `{ payload, header }`: a Stripe event signed by `stripe.webhooks.generateTestHeaderString`. */
function signedStripeEvent({ id = uniqueId('evt_node_int'), type = 'invoice.paid', customer = 'cus_node_int', amount = 2000, secret = STRIPE_SECRET } = {}) {
  const payload = JSON.stringify({
    id,
    object: 'event',
    api_version: '2024-06-20',
    created: Math.floor(Date.now() / 1000),
    livemode: false,
    pending_webhooks: 1,
    request: { id: null, idempotency_key: null },
    type,
    data: { object: { id: `in_${id}`, object: 'invoice', customer, amount_paid: amount, currency: 'usd', status: 'paid' } },
  })
  const header = official.webhooks.generateTestHeaderString({ payload, secret })
  return { id, payload, header }
}

/** A Shopify `orders/paid` delivery: `{ id, body, headers }` signed with `secret`. */
function signedShopifyDelivery({ secret = SHOPIFY_SECRET, customer = '115310627314723950' } = {}) {
  const id = crypto.randomUUID()
  const body = `{"id":820982911946154508,"total_price":"19.00","currency":"USD","customer":{"id":${customer}}}`
  return {
    id,
    body,
    headers: {
      'content-type': 'application/json',
      'x-shopify-hmac-sha256': crypto.createHmac('sha256', secret).update(body).digest('base64'),
      'x-shopify-topic': 'orders/paid',
      'x-shopify-api-version': '2025-07',
      'x-shopify-shop-domain': 'example.myshopify.com',
      'x-shopify-webhook-id': id,
      'x-shopify-event-id': id,
      'x-shopify-triggered-at': new Date().toISOString(),
    },
  }
}

/** The server's API, as a test reads it. */
function apiOf(server) {
  return async function api(method, path, body) {
    const res = await fetch(`${server.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${server.apiKey}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    })
    const text = await res.text()
    return { status: res.status, body: text ? JSON.parse(text) : null }
  }
}

/** Polls `fn` until it returns something truthy. */
async function eventually(what, fn, timeoutMs = 20_000) {
  const start = Date.now()
  for (;;) {
    const value = await fn()
    if (value) return value
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

/** A loopback URL where nothing listens (connections refused). */
async function closedPortUrl() {
  const server = net.createServer()
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address()
  await new Promise((resolve) => server.close(resolve))
  return `http://127.0.0.1:${port}`
}

/** A loopback server that accepts connections and never answers: `{ url, close() }`. */
async function blackHole() {
  const sockets = new Set()
  const server = net.createServer((socket) => {
    sockets.add(socket)
    socket.on('error', () => {})
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    close: () => {
      for (const socket of sockets) socket.destroy()
      return new Promise((resolve) => server.close(resolve))
    },
  }
}

/** A logger that keeps what it is told. */
function memoryLogger() {
  const lines = []
  return { lines, warn: (message) => lines.push(String(message)) }
}

module.exports = {
  STRIPE_SECRET,
  SHOPIFY_SECRET,
  uniqueId,
  signedStripeEvent,
  signedShopifyDelivery,
  apiOf,
  eventually,
  closedPortUrl,
  blackHole,
  memoryLogger,
}
