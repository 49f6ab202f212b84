'use strict'
// What every framework integration shares, framework-free: verifying a
// webhook, sending its receipt without ever failing the request, and the
// repair endpoint's verify → fulfil → report. The adapters (express.js,
// fastify.js, next.js) only move bytes and statuses in and out.

const sdk = require('../index.js')
const native = require('../native.js')

const PROVIDERS = {
  stripe: { name: 'Stripe', env: ['STRIPE_WEBHOOK_SECRET'], property: 'stripeEvent' },
  shopify: { name: 'Shopify', env: ['SHOPIFY_WEBHOOK_SECRET', 'SHOPIFY_API_SECRET'], property: 'shopifyDelivery' },
}
const REPAIR_ENV = 'SENDPROMPTLY_SIGNING_SECRET'

/** The configured secret: the option, else the first environment variable set. */
function secretOf(option, names) {
  if (option !== undefined && option !== null && option !== '') return option
  for (const name of names) if (process.env[name]) return process.env[name]
  return undefined
}

/** The 500 of a missing secret, naming the option and the variable to set. */
function noSecret(sp, what, names) {
  const message = `${what} is not configured: pass { secret } to the integration or set ${names.join(' or ')}`
  warn(sp, message)
  return { status: 500, body: { error: message, code: 'missing_secret' } }
}

function warn(sp, message) {
  try {
    ;(sp?.logger ?? console).warn(`sendpromptly: ${message}`)
  } catch {
    // a logger that throws must not reach the app
  }
}

function needClient(sp, where) {
  if (!sp || typeof sp.receiptFor !== 'function') {
    throw new sdk.ConfigurationError(`${where}: the first argument must be a SendPromptly client`, {
      type: 'configuration_error',
    })
  }
}

/** Reads a Node request stream to its end. */
function readBody(stream) {
  return new Promise((resolve, reject) => {
    const chunks = []
    stream.on('data', (chunk) => chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk))
    stream.on('end', () => resolve(Buffer.concat(chunks)))
    stream.on('error', reject)
  })
}

/** The first value of a header in any container (plain object or Fetch `Headers`). */
function header(headers, name) {
  if (!headers) return undefined
  if (typeof headers.get === 'function') return headers.get(name) ?? undefined
  const value = headers[name] ?? headers[name.toLowerCase()]
  return Array.isArray(value) ? value.join(',') : value
}

/** Verifies a provider webhook; throws a `SignatureVerificationError`. */
function verifyWebhook(provider, body, headers, secret, options) {
  if (provider === 'stripe') {
    return sdk.stripe.verify(body, header(headers, 'stripe-signature'), secret, { tolerance: options.tolerance })
  }
  return sdk.shopify.verify(body, headers, secret)
}

/** The HTTP answer to a verification error: 500 for our own misconfiguration, else 400. */
function refusal(err) {
  if (!(err instanceof sdk.SignatureVerificationError)) throw err
  const status = err.category === 'configuration' || err instanceof sdk.RawBodyError ? 500 : 400
  return { status, body: { error: err.message, code: err.code } }
}

/**
 * Sends the receipt of a verified event (awaited within the client's time
 * budget, or queued on `options.background`); never throws.
 * `options.receipt`: extra receipt fields (`effect`, `deadlineSeconds`,
 * `metadata`, `subject`), a function of the event returning them, or
 * `false` to send none.
 */
async function sendReceipt(sp, event, options) {
  if (options.receipt === false) return null
  try {
    const extra = typeof options.receipt === 'function' ? await options.receipt(event) : options.receipt ?? {}
    if (options.background) {
      options.background.receiptFor(event, extra ?? {})
      return null
    }
    return await sp.receiptFor(event, extra ?? {})
  } catch (err) {
    warn(sp, `receipt not recorded: ${err && err.message}`)
    return null
  }
}

/**
 * A webhook request start to finish, framework-free: `{ status, body }`
 * to answer now (a refusal), or `{ event }` verified with its receipt sent.
 */
async function acceptWebhook(sp, provider, rawBody, headers, options) {
  const { name, env } = PROVIDERS[provider]
  const secret = secretOf(options.secret, env)
  if (secret === undefined) return noSecret(sp, `the ${name} webhook secret`, env)
  let event
  try {
    event = verifyWebhook(provider, rawBody, headers, secret, options)
  } catch (err) {
    const answer = refusal(err)
    warn(sp, `${provider} webhook refused (${err.code ?? err.category}): ${err.message}`)
    return answer
  }
  const receipt = await sendReceipt(sp, event, options)
  return { event, receipt }
}

/**
 * A repair callback start to finish: verify it (400 when forged), call
 * `fulfil(callback.event, callback)`, report `success` or `failure` with
 * its `reprocess_id` (never throwing). The answer tells SendPromptly
 * whether to call again: 200 `{ repaired }` once the result is recorded
 * (`repaired: false` with the error when `fulfil` threw: the failure is on
 * the incident), 503 when the result could not be recorded.
 */
async function handleRepair(sp, rawBody, headers, options) {
  const secret = secretOf(options.secret, [REPAIR_ENV])
  if (secret === undefined) return noSecret(sp, "the repair callbacks' signing secret", [REPAIR_ENV])
  let callback
  try {
    callback = sdk.verifyRepairRequest(rawBody, headers, secret)
  } catch (err) {
    const answer = refusal(err)
    warn(sp, `repair callback refused (${err.code ?? err.category}): ${err.message}`)
    return answer
  }
  return inRepairSpan(headers, callback.reprocess_id, async () => {
    let thrown
    let failed = false
    try {
      await options.fulfil(callback.event, callback)
    } catch (err) {
      thrown = err
      failed = true
    }
    try {
      if (failed) await sp.failureFor(callback, thrown)
      else await sp.successFor(callback)
    } catch (err) {
      warn(sp, `result of repair ${callback.reprocess_id} not recorded: ${err && err.message}`)
      return { status: 503, body: { error: 'the result was not recorded; SendPromptly will call again', reprocess_id: callback.reprocess_id } }
    }
    const body = { repaired: !failed, reprocess_id: callback.reprocess_id }
    if (failed) body.error = thrown instanceof Error ? `${thrown.name}: ${thrown.message}` : String(thrown)
    return { status: 200, body }
  })
}

/** One request header from a plain object, Node's lower-cased headers or a fetch `Headers`. */
function headerOf(headers, name) {
  if (!headers) return undefined
  if (typeof headers.get === 'function') return headers.get(name) ?? undefined
  const key = Object.keys(headers).find((k) => k.toLowerCase() === name)
  const value = key === undefined ? undefined : headers[key]
  return Array.isArray(value) ? value[0] : value
}

/**
 * Runs `fn` in a span `sendpromptly.repair` whose parent is the callback's
 * `traceparent` (it continues the failing signal's trace; parsed by the Rust
 * core), when `@opentelemetry/api` is installed; otherwise just runs it.
 */
function inRepairSpan(headers, reprocessId, fn) {
  let api = null
  try {
    api = require('@opentelemetry/api')
  } catch {
    return fn()
  }
  const header = headerOf(headers, 'traceparent')
  const parts = typeof header === 'string' ? native.nativeParseTraceparent(header) : null
  if (!parts) return fn()
  let spanContext = { traceId: parts.traceId, spanId: parts.spanId, traceFlags: parts.traceFlags, isRemote: true }
  const state = headerOf(headers, 'tracestate')
  if (typeof state === 'string' && state && typeof api.createTraceState === 'function') {
    spanContext = { ...spanContext, traceState: api.createTraceState(state) }
  }
  const parent = api.trace.setSpanContext(api.context.active(), spanContext)
  const attributes = { 'sendpromptly.reprocess_id': reprocessId }
  return api.trace.getTracer('sendpromptly').startActiveSpan('sendpromptly.repair', { attributes }, parent, async (span) => {
    try {
      return await fn()
    } finally {
      span.end()
    }
  })
}

function needFunction(value, what) {
  if (typeof value !== 'function') {
    throw new sdk.ConfigurationError(`${what} must be a function`, { type: 'configuration_error' })
  }
}

module.exports = { PROVIDERS, warn, needClient, needFunction, readBody, acceptWebhook, handleRepair }
