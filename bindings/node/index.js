'use strict'
// The public API of the `sendpromptly` package: the `SendPromptly` client,
// background mode, the verifiers and the `SendPromptlyError` classes.
//
// Everything that matters (retries, time budget, idempotency keys, the
// background queue, signature checks) happens in the Rust SDK behind
// `./native.js`; this file only converts: it normalises bodies and
// headers, turns native errors into `SendPromptlyError` subclasses, and
// keeps exceptions thrown by user callbacks away from native code.

const native = require('./native.js')

const MARKER = 'SENDPROMPTLY_ERROR:'

/** Base class of every error this package throws or rejects with. */
class SendPromptlyError extends Error {
  constructor(message, info = {}, options) {
    super(message, options)
    this.name = new.target.name
    /** Machine-readable type, e.g. `validation_error`, `timeout`, `bad_signature`. */
    this.type = info.type ?? 'sendpromptly_error'
    /** HTTP status when the server answered, else `undefined`. */
    this.status = info.status ?? undefined
    /** The offending field, when one is to blame. */
    this.param = info.param ?? undefined
    /** The server's `Request-Id` (quote it to support). */
    this.requestId = info.requestId ?? undefined
    /** Attempts made (0 when nothing was sent). */
    this.attempts = info.attempts ?? 0
    /** Whether the failure was of a retryable kind (connection, timeout, 429, 5xx). */
    this.retryable = info.retryable ?? false
  }
}

/** The server answered with an error status. */
class APIError extends SendPromptlyError {
  constructor(message, info = {}, options) {
    super(message, info, options)
    /** The server's own message. */
    this.detail = info.detail ?? undefined
    /** Milliseconds the server asked to wait (`Retry-After`), if any. */
    this.retryAfterMs = info.retryAfterMs ?? undefined
  }
}
/** 401: the API key is missing or unknown. */
class AuthenticationError extends APIError {}
/** 404: no such object in this project. */
class NotFoundError extends APIError {}
/** 409: a conflict, e.g. a repair callback still being delivered. */
class ConflictError extends APIError {}
/** 400, 413, 415, 422: the server refused the request as sent. */
class InvalidRequestError extends APIError {}
/** 429: too many requests (after the retries the policy allowed). */
class RateLimitError extends APIError {}
/** 5xx: the server failed (after the retries the policy allowed). */
class ServerError extends APIError {}

/** No usable answer: the connection failed or was closed. */
class ConnectionError extends SendPromptlyError {
  constructor(message, info = {}, options) {
    super(message, info, options)
    /** `connect`, `connection_closed`, `timeout` or `other`. */
    this.reason = info.reason ?? 'other'
    /** The URL called. */
    this.url = info.url ?? undefined
    /** How long the call took in all, in milliseconds. */
    this.elapsedMs = info.elapsedMs ?? undefined
    /** Whether the call's total time budget ran out. */
    this.budgetExhausted = info.budgetExhausted ?? false
  }
}
/** An attempt, or the call's time budget, ran out of time. */
class TimeoutError extends ConnectionError {}

/** Rejected before sending: a field breaks the contract's limits. */
class ValidationError extends SendPromptlyError {}
/** The client is misconfigured (no API key, bad URL, bad setting). */
class ConfigurationError extends SendPromptlyError {}
/** A success answer that could not be read. */
class DecodeError extends SendPromptlyError {}

/** A webhook or repair callback failed verification. */
class SignatureVerificationError extends SendPromptlyError {
  constructor(message, info = {}, options) {
    super(message, info, options)
    /** `stripe`, `shopify` or `sendpromptly` (repair callbacks). */
    this.provider = info.provider
    /** `bad_signature`, `stale_timestamp`, `malformed` or `configuration`. */
    this.category = info.category
    /** The precise cause, e.g. `no_matching_signature`, `timestamp_too_old`. */
    this.code = info.code
  }
}
/** No signature matches the body and secret(s). */
class InvalidSignatureError extends SignatureVerificationError {}
/** The signed timestamp is outside the tolerance (replay or clock skew). */
class StaleTimestampError extends SignatureVerificationError {}
/** Headers missing or unparseable, or the body is not what was expected. */
class MalformedWebhookError extends SignatureVerificationError {}
/** A parsed object was passed where the raw request body is needed. */
class RawBodyError extends MalformedWebhookError {}
/** The verifier has no usable secret. */
class WebhookSecretError extends SignatureVerificationError {}

// Classes by the name the native side gives (`errorClass`: the contract's
// one status -> class map, `sendpromptly_core::wire::ErrorClass`).
const API_BY_CLASS = {
  AuthenticationError,
  NotFoundError,
  ConflictError,
  RateLimitError,
  InvalidRequestError,
  ServerError,
  APIError,
}
const SIGNATURE_BY_CATEGORY = {
  bad_signature: InvalidSignatureError,
  stale_timestamp: StaleTimestampError,
  malformed: MalformedWebhookError,
  configuration: WebhookSecretError,
}

/** Builds the error class for a native error description. */
function errorFromInfo(info, options) {
  let Class = SendPromptlyError
  switch (info.kind) {
    case 'api':
      Class = API_BY_CLASS[info.errorClass] ?? APIError
      break
    case 'transport':
      Class = info.reason === 'timeout' ? TimeoutError : ConnectionError
      break
    case 'validation':
      Class = ValidationError
      break
    case 'config':
      Class = ConfigurationError
      break
    case 'decode':
      Class = DecodeError
      break
    case 'signature':
      Class = SIGNATURE_BY_CATEGORY[info.category] ?? SignatureVerificationError
      break
  }
  return new Class(info.message, info, options)
}

/** Any error from the native module, as a `SendPromptlyError`. */
function fromNative(err) {
  if (err instanceof SendPromptlyError) return err
  const message = err && typeof err.message === 'string' ? err.message : String(err)
  if (message.startsWith(MARKER)) {
    try {
      return errorFromInfo(JSON.parse(message.slice(MARKER.length)))
    } catch {
      // fall through: report the text as it is
    }
  }
  // Arguments napi could not convert (a missing field, a wrong type).
  return new ValidationError(message.replace(/^Failed to convert/, 'Invalid argument: failed to convert'), {
    type: 'invalid_request',
  }, { cause: err })
}

async function call(fn) {
  try {
    return await fn()
  } catch (err) {
    throw fromNative(err)
  }
}

function sync(fn) {
  try {
    return fn()
  } catch (err) {
    throw fromNative(err)
  }
}

function needObject(value, what) {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ValidationError(`${what} must be an options object, got ${value === null ? 'null' : typeof value}`, {
      type: 'invalid_request',
    })
  }
}

function jsonObject(value, param) {
  if (value === undefined || value === null) return undefined
  let copy
  try {
    copy = JSON.parse(JSON.stringify(value))
  } catch (err) {
    throw new ValidationError(`invalid ${param}: must be JSON-serialisable (${err.message})`, {
      type: 'invalid_request',
      param,
    })
  }
  return copy
}

let otelApi
/** `@opentelemetry/api` when the app has it (an optional peer dependency), else null. */
function otel() {
  if (otelApi === undefined) {
    try {
      otelApi = require('@opentelemetry/api')
    } catch {
      otelApi = null
    }
  }
  return otelApi
}

/** Adds the active OpenTelemetry span's `traceparent`/`tracestate` to a signal that has none (formatted and checked by the Rust core). */
function withTrace(out) {
  if (out.traceparent != null) return out
  const api = otel()
  const span = api && api.trace.getSpanContext(api.context.active())
  if (!span || !api.isSpanContextValid(span)) return out
  const state = span.traceState ? span.traceState.serialize() : undefined
  const found = native.nativeTraceContext(span.traceId, span.spanId, span.traceFlags, state || undefined)
  if (found) {
    out.traceparent = found.traceparent
    if (found.tracestate) out.tracestate = found.tracestate
  }
  return out
}

function receiptOptions(options) {
  needObject(options, 'receipt()')
  const out = withTrace({ ...options, metadata: jsonObject(options.metadata, 'metadata') })
  if (options.occurredAt instanceof Date) {
    if (Number.isNaN(options.occurredAt.getTime())) {
      throw new ValidationError('invalid occurred_at: an invalid Date', { type: 'invalid_request', param: 'occurred_at' })
    }
    out.occurredAt = options.occurredAt.toISOString()
  }
  return out
}

/** A `Date` option → RFC 3339 (what the native side parses). */
function isoTime(value, param) {
  if (!(value instanceof Date)) return value
  if (Number.isNaN(value.getTime())) {
    throw new ValidationError(`invalid ${param}: an invalid Date`, { type: 'invalid_request', param })
  }
  return value.toISOString()
}

function batchOptions(options, method) {
  needObject(options, `${method}()`)
  return {
    ...options,
    openedAfter: isoTime(options.openedAfter, 'opened_after'),
    openedBefore: isoTime(options.openedBefore, 'opened_before'),
  }
}

function resultOptions(options, method) {
  needObject(options, `${method}()`)
  const out = withTrace({ ...options, metadata: jsonObject(options.metadata, 'metadata') })
  if (out.error instanceof Error) out.error = out.error.message || String(out.error)
  return out
}

/** Raw body → bytes; a parsed object is the classic mistake, named as such. */
function toBytes(body) {
  if (body instanceof Uint8Array) return body
  if (typeof body === 'string') return Buffer.from(body, 'utf8')
  if (body instanceof ArrayBuffer) return new Uint8Array(body)
  if (ArrayBuffer.isView(body)) return new Uint8Array(body.buffer, body.byteOffset, body.byteLength)
  if (body !== null && typeof body === 'object') {
    throw new RawBodyError(
      'received a parsed object instead of the raw request body: signatures are computed over the exact bytes ' +
        'received, which JSON.parse/JSON.stringify do not preserve. Pass the raw body as a Buffer or string, e.g. ' +
        "in Express mount express.raw({ type: 'application/json' }) on this route and pass req.body.",
      { type: 'malformed', category: 'malformed', code: 'parsed_body' },
    )
  }
  throw new MalformedWebhookError(`the request body must be a Buffer, Uint8Array or string, got ${body === null ? 'null' : typeof body}`, {
    type: 'malformed',
    category: 'malformed',
    code: 'invalid_body',
  })
}

/** Any header container → `{lower-case name: value}`. */
function toHeaders(headers) {
  const out = {}
  const put = (name, value) => {
    if (value === undefined || value === null) return
    const key = String(name).toLowerCase()
    const text = Array.isArray(value) ? value.map(String).join(', ') : String(value)
    if (!(key in out)) out[key] = text
  }
  if (headers === undefined || headers === null) return out
  if (typeof headers !== 'object') {
    throw new MalformedWebhookError(`headers must be an object or a Fetch Headers, got ${typeof headers}`, {
      type: 'malformed',
      category: 'malformed',
      code: 'invalid_headers',
    })
  }
  if (typeof headers.forEach === 'function' && typeof headers.get === 'function') {
    // Fetch `Headers` (already joined and lower-cased) or a `Map`.
    headers.forEach((value, name) => put(name, value))
  } else if (Array.isArray(headers)) {
    for (const pair of headers) if (Array.isArray(pair)) put(pair[0], pair[1])
  } else {
    for (const [name, value] of Object.entries(headers)) put(name, value)
  }
  return out
}

function toSecrets(secret) {
  if (secret === undefined || secret === null) return []
  return (Array.isArray(secret) ? secret : [secret]).map(String)
}

/**
 * Verifies a repair callback from SendPromptly and returns its parsed body.
 */
function verifyRepairRequest(body, headers, secret) {
  const bytes = toBytes(body)
  return sync(() => native.nativeVerifyRepairRequest(bytes, toHeaders(headers), toSecrets(secret)))
}

const stripe = {
  /** Verifies a Stripe webhook and returns the event. */
  verify(payload, signatureHeader, secret, options = {}) {
    const bytes = toBytes(payload)
    const header = Array.isArray(signatureHeader) ? signatureHeader.join(',') : signatureHeader == null ? '' : String(signatureHeader)
    const tolerance = options?.tolerance ?? undefined
    if (tolerance !== undefined && typeof tolerance !== 'number') {
      throw new ConfigurationError(`stripe.verify: tolerance must be a number of seconds, got ${typeof tolerance}`, {
        type: 'configuration_error',
      })
    }
    return sync(() => native.nativeStripeVerify(bytes, header, secret == null ? '' : String(secret), tolerance))
  },
}

const shopify = {
  /** Verifies a Shopify webhook and returns its topic, ids and parsed body. */
  verify(body, headers, secret) {
    const bytes = toBytes(body)
    const delivery = sync(() => native.nativeShopifyVerify(bytes, toHeaders(headers), toSecrets(secret)))
    const fields = delivery.signalFields
    delete delivery.signalFields
    Object.defineProperty(delivery, FIELDS, { value: fields })
    return delivery
  },
}


// The receipt and result fields of a verified Shopify delivery, computed by
// the Rust SDK when it was verified (its body may hold BigInts, which
// cannot go back to native code).
const FIELDS = Symbol('sendpromptly.signalFields')

/** `{ receipt, target }` of an event, a repair callback or `{ provider, eventId }` (Rust conversions). */
function signalFields(source) {
  if (source !== null && typeof source === 'object' && source[FIELDS]) return source[FIELDS]
  return sync(() => native.nativeSignalFields(source))
}

function withoutNulls(object) {
  const out = {}
  for (const [key, value] of Object.entries(object)) if (value !== null && value !== undefined) out[key] = value
  return out
}

/**
 * The event reference `{ provider, eventId }` (plus `reprocessId` for a
 * repair callback) of a verified Stripe event, Shopify delivery or repair
 * callback: what a job carries to its worker.
 */
function eventReference(source) {
  return withoutNulls(signalFields(source).target)
}

/** Receipt options filled from a verified event, `extra` on top (metadata merged). */
function receiptForOptions(event, extra = {}) {
  needObject(extra, 'receiptFor(event, options)')
  const base = signalFields(event).receipt
  if (!base) {
    throw new ValidationError('receiptFor needs the event type: pass a verified event or { provider, eventId, eventType }', {
      type: 'invalid_request',
      param: 'event_type',
    })
  }
  const metadata = base.metadata || extra.metadata ? { ...base.metadata, ...jsonObject(extra.metadata, 'metadata') } : undefined
  return { ...withoutNulls(base), ...extra, metadata }
}

/** Result options for a verified event or repair callback, `extra` on top. */
function resultForOptions(target, extra = {}) {
  needObject(extra, 'successFor/failureFor(target, options)')
  return { ...eventReference(target), ...extra }
}

/** Failure options: a string `error` as is, anything thrown described by `describeThrown`. */
function failureForOptions(target, error, extra = {}) {
  needObject(extra, 'failureFor(target, error, options)')
  if (typeof error === 'string') return resultForOptions(target, { ...extra, error })
  const { text, type } = describeThrown(error)
  return resultForOptions(target, { ...extra, error: text, metadata: { ...jsonObject(extra.metadata, 'metadata'), error_type: type } })
}

const MAX_ERROR_BYTES = 4096

/** `Type: message` of what a tracked function threw, cut to the contract's 4 KiB. */
function describeThrown(err) {
  let type = typeof err
  if (err instanceof Error) {
    // `class PaymentDeclined extends Error {}` keeps `name` 'Error': its class name says more.
    type = err.name && err.name !== 'Error' ? err.name : err.constructor?.name || 'Error'
  }
  let message = err instanceof Error ? err.message : String(err)
  let text = message ? `${type}: ${message}` : type
  while (Buffer.byteLength(text, 'utf8') > MAX_ERROR_BYTES) text = text.slice(0, Math.floor(text.length * 0.9))
  return { text, type }
}

function logWarning(logger, message) {
  try {
    ;(logger ?? console).warn(`sendpromptly: ${message}`)
  } catch {
    // a logger that throws must not reach the app
  }
}

/** Background mode: signals queued in memory and delivered by a task. */
class Background {
  #native
  constructor(nativeBackground) {
    this.#native = nativeBackground
  }
  receipt(options) {
    return sync(() => this.#native.receipt(receiptOptions(options)))
  }
  success(options) {
    return sync(() => this.#native.success(resultOptions(options, 'success')))
  }
  failure(options) {
    return sync(() => this.#native.failure(resultOptions(options, 'failure')))
  }
  result(options) {
    return sync(() => this.#native.result(resultOptions(options, 'result')))
  }
  /** Queues a receipt filled from a verified Stripe event or Shopify delivery. */
  receiptFor(event, options = {}) {
    return this.receipt(receiptForOptions(event, options))
  }
  /** Queues a `success` for a verified event or repair callback. */
  successFor(target, options = {}) {
    return this.success(resultForOptions(target, options))
  }
  /** Queues a `failure` for a verified event or repair callback. */
  failureFor(target, error, options = {}) {
    return this.failure(failureForOptions(target, error, options))
  }
  stats() {
    return this.#native.stats()
  }
  flush(timeoutMs) {
    return call(() => this.#native.flush(timeoutMs))
  }
  shutdown(timeoutMs) {
    return call(() => this.#native.shutdown(timeoutMs))
  }
}

/** The SendPromptly client. */
class SendPromptly {
  #native
  constructor(options = {}) {
    if (options === null || typeof options !== 'object') {
      throw new ConfigurationError('new SendPromptly(options): options must be an object', { type: 'configuration_error' })
    }
    const { apiKey, baseUrl, retry, connectTimeoutMs, logger } = options
    this.#native = sync(() => new native.NativeClient({ apiKey, baseUrl, retry, connectTimeoutMs }))
    /** Where integrations and `track` log what they could not send (default `console`). */
    this.logger = logger ?? console
  }
  /** The base URL calls go to. */
  get baseUrl() {
    return this.#native.baseUrl
  }
  receipt(options) {
    return call(() => this.#native.receipt(receiptOptions(options)))
  }
  success(options) {
    return call(() => this.#native.success(resultOptions(options, 'success')))
  }
  failure(options) {
    return call(() => this.#native.failure(resultOptions(options, 'failure')))
  }
  result(options) {
    return call(() => this.#native.result(resultOptions(options, 'result')))
  }
  /** A receipt filled from a verified Stripe event or Shopify delivery (provider, id, type, subject, time, object metadata). */
  receiptFor(event, options = {}) {
    return call(() => this.receipt(receiptForOptions(event, options)))
  }
  /** A `success` for a verified event or a repair callback (which also sets `reprocessId`). */
  successFor(target, options = {}) {
    return call(() => this.success(resultForOptions(target, options)))
  }
  /**
   * A `failure` for a verified event or a repair callback; `error` says why: a
   * string, or what was thrown (sent as `Type: message`, the type also in
   * `metadata.error_type`).
   */
  failureFor(target, error, options = {}) {
    return call(() => this.failure(failureForOptions(target, error, options)))
  }
  /**
   * Reports how a function that applies the effect of one event ends:
   * `success` when it resolves, `failure` (the error's type and message)
   * when it throws, which is rethrown unchanged. Never throws its own
   * errors (they are logged) and waits at most the client's time budget.
   *
   * - `sp.track(ref, async () => …)` runs the function now and returns its promise;
   * - `sp.track(fn)` returns a wrapper whose first argument is the event reference
   *   (or pass `{ event: (...args) => ref }`).
   *
   * `ref`: a verified Stripe event, Shopify delivery, repair callback or `{ provider, eventId }`.
   * Options: `event`, `failureIsFinal(err)` (return `false` to report nothing, e.g. a job that
   * will be retried), `metadata` (sent with either result).
   */
  track(ref, fn, options = {}) {
    if (typeof ref === 'function') {
      const wrapped = ref
      const opts = fn ?? {}
      const pick = typeof opts.event === 'function' ? opts.event : (first) => first
      const sp = this
      return async function tracked(...args) {
        return sp.#track(pick(...args), () => wrapped.apply(this, args), opts)
      }
    }
    if (typeof fn !== 'function') {
      throw new ConfigurationError('sp.track(ref, fn): fn must be a function (or call sp.track(fn) to wrap one)', {
        type: 'configuration_error',
      })
    }
    return this.#track(ref, fn, options ?? {})
  }
  async #track(ref, fn, options) {
    let target
    try {
      target = eventReference(ref)
    } catch (err) {
      logWarning(this.logger, `track: no event reference, nothing will be reported: ${err.message}`)
    }
    if (!target) return fn()
    const report = (send) =>
      call(send).catch((err) => logWarning(this.logger, `result for ${target.provider}/${target.eventId} not recorded: ${err.message}`))
    const metadata = options.metadata
    let value
    try {
      value = await fn()
    } catch (thrown) {
      let final = true
      try {
        final = options.failureIsFinal ? options.failureIsFinal(thrown) !== false : true
      } catch (err) {
        logWarning(this.logger, `track: failureIsFinal threw: ${err && err.message}`)
      }
      if (final) {
        // Whatever was thrown (a string too) is described: `Type: message`.
        const { text, type } = describeThrown(thrown)
        await report(() => this.failureFor(target, text, { metadata: { ...metadata, error_type: type } }))
      }
      throw thrown
    }
    await report(() => this.success({ ...target, metadata }))
    return value
  }
  getEvent(provider, eventId) {
    return call(() => this.#native.getEvent(provider, eventId))
  }
  searchEvents(filter = {}) {
    return call(() => this.#native.searchEvents(filter))
  }
  listIncidents(filter = {}) {
    return call(() => this.#native.listIncidents(filter))
  }
  getIncident(incidentId) {
    return call(() => this.#native.getIncident(incidentId))
  }
  reprocess(incidentId, options = {}) {
    return call(() => this.#native.reprocess(incidentId, options?.note))
  }
  resolve(incidentId, options = {}) {
    return call(() => this.#native.resolve(incidentId, options?.note ?? ''))
  }
  createProofLink(incidentId, options = {}) {
    return call(() => this.#native.createProofLink(incidentId, options?.expiresInSeconds))
  }
  listProofLinks(incidentId) {
    return call(() => this.#native.listProofLinks(incidentId))
  }
  revokeProofLink(proofLinkId) {
    return call(() => this.#native.revokeProofLink(proofLinkId))
  }
  planReprocessBatch(options) {
    return call(() => this.#native.planReprocessBatch(batchOptions(options, 'planReprocessBatch')))
  }
  startReprocessBatch(options) {
    return call(() => this.#native.startReprocessBatch(batchOptions(options, 'startReprocessBatch')))
  }
  reprocessBatch(batchId) {
    return call(() => this.#native.reprocessBatch(batchId))
  }
  cancelReprocessBatch(batchId) {
    return call(() => this.#native.cancelReprocessBatch(batchId))
  }
  project() {
    return call(() => this.#native.project())
  }
  updateProject(update) {
    return call(() => this.#native.updateProject(update))
  }
  rotateSigningSecret() {
    return call(() => this.#native.rotateSigningSecret())
  }
  health() {
    return call(() => this.#native.health())
  }
  background(options = {}) {
    const { onDrop, capacity, concurrency, retry } = options ?? {}
    if (onDrop !== undefined && typeof onDrop !== 'function') {
      throw new ConfigurationError('background({ onDrop }): onDrop must be a function', { type: 'configuration_error' })
    }
    const callback =
      onDrop &&
      ((dropped) => {
        try {
          onDrop({ ...dropped, error: dropped.error ? errorFromInfo(dropped.error) : null })
        } catch (err) {
          // A throwing callback must not take the process down.
          process.emitWarning(`sendpromptly: the onDrop callback threw: ${err && err.stack ? err.stack : err}`)
        }
      })
    return new Background(sync(() => this.#native.background({ capacity, concurrency, retry }, callback)))
  }
}

module.exports = {
  SendPromptly,
  Background,
  eventReference,
  verifyRepairRequest,
  stripe,
  shopify,
  SendPromptlyError,
  APIError,
  AuthenticationError,
  NotFoundError,
  ConflictError,
  InvalidRequestError,
  RateLimitError,
  ServerError,
  ConnectionError,
  TimeoutError,
  ValidationError,
  ConfigurationError,
  DecodeError,
  SignatureVerificationError,
  InvalidSignatureError,
  StaleTimestampError,
  MalformedWebhookError,
  RawBodyError,
  WebhookSecretError,
}
module.exports.default = SendPromptly
