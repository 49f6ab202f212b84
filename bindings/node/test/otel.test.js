'use strict'
// OpenTelemetry propagation with the real `@opentelemetry/api` and
// `@opentelemetry/sdk-trace-base` (issue #25): a receipt and a result sent
// inside an active span carry its `traceparent`, and the server's timeline
// (read back through the API) holds that trace; an explicit `traceparent`
// wins; without an active span nothing is added; the Express repair
// endpoint runs `fulfil` in a span whose parent is the real callback's
// `traceparent`, in the failing signal's trace.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const api = require('@opentelemetry/api')
const { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } = require('@opentelemetry/sdk-trace-base')
const http = require('node:http')
const express = require('express')
const { SendPromptly } = require('..')
const { repairEndpoint } = require('../integrations/express.js')
const { startServer } = require('./server.js')

// The SDK registers no context manager (that is @opentelemetry/sdk-trace-node's
// job); a synchronous stack is enough here: the client reads the active span
// when receipt()/failure() is called.
class StackContextManager {
  constructor() {
    this.current = api.ROOT_CONTEXT
  }
  active() {
    return this.current
  }
  with(context, fn, thisArg, ...args) {
    const previous = this.current
    this.current = context
    try {
      return fn.call(thisArg, ...args)
    } finally {
      this.current = previous
    }
  }
  bind(_context, target) {
    return target
  }
  enable() {
    return this
  }
  disable() {
    this.current = api.ROOT_CONTEXT
    return this
  }
}

let server
let sp
let tracer
const exporter = new InMemorySpanExporter()

before(async () => {
  server = await startServer()
  sp = new SendPromptly({ apiKey: server.apiKey, baseUrl: server.url })
  api.context.setGlobalContextManager(new StackContextManager())
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
  api.trace.setGlobalTracerProvider(provider)
  tracer = api.trace.getTracer('otel.test')
})

after(async () => {
  await server.stop()
})

function unique(prefix) {
  return `${prefix}_${Date.now()}_${Math.random().toString(16).slice(2)}`
}

function traceOf(detail, kind) {
  const entry = detail.timeline.find((e) => e.kind === kind)
  assert.ok(entry, `no ${kind} in ${detail.timeline.map((e) => e.kind)}`)
  return entry.detail.trace
}

test('a receipt and a failure inside an active span carry its trace to the timeline', async () => {
  const eventId = unique('evt_node_otel')
  const handler = tracer.startSpan('handle invoice.paid')
  const inHandler = api.trace.setSpan(api.context.active(), handler)
  await api.context.with(inHandler, () => sp.receipt({ provider: 'stripe', eventId, eventType: 'invoice.paid' }))
  const worker = tracer.startSpan('apply credits', {}, inHandler)
  await api.context.with(api.trace.setSpan(inHandler, worker), () =>
    sp.failure({ provider: 'stripe', eventId, error: 'ledger locked' }),
  )
  worker.end()
  handler.end()

  const detail = await sp.getEvent('stripe', eventId)
  const receipt = traceOf(detail, 'receipt.recorded')
  assert.equal(receipt.trace_id, handler.spanContext().traceId)
  assert.equal(receipt.span_id, handler.spanContext().spanId)
  assert.equal(receipt.sampled, true)
  const failure = traceOf(detail, 'result.failure')
  assert.equal(failure.trace_id, handler.spanContext().traceId)
  assert.equal(failure.span_id, worker.spanContext().spanId)
  assert.equal(exporter.getFinishedSpans().length, 2)
})

test('an explicit traceparent wins over the active span', async () => {
  const eventId = unique('evt_node_explicit')
  const explicit = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
  const span = tracer.startSpan('handler')
  await api.context.with(api.trace.setSpan(api.context.active(), span), () =>
    sp.receipt({ provider: 'stripe', eventId, eventType: 'invoice.paid', traceparent: explicit, tracestate: 'rojo=1' }),
  )
  span.end()
  const trace = traceOf(await sp.getEvent('stripe', eventId), 'receipt.recorded')
  assert.equal(trace.traceparent, explicit)
  assert.equal(trace.tracestate, 'rojo=1')
})

test('without an active span no trace is sent', async () => {
  const eventId = unique('evt_node_untraced')
  await sp.receipt({ provider: 'stripe', eventId, eventType: 'invoice.paid' })
  const entry = (await sp.getEvent('stripe', eventId)).timeline.find((e) => e.kind === 'receipt.recorded')
  assert.equal(entry.detail.trace, undefined)
})

test('a malformed explicit traceparent is refused, naming the field', async () => {
  await assert.rejects(
    sp.receipt({ provider: 'stripe', eventId: unique('evt_node_bad'), eventType: 'invoice.paid', traceparent: 'nope' }),
    (err) => err.param === 'traceparent' && /lowercase hex/.test(err.message),
  )
})

test('the repair endpoint runs fulfil in a child span of the callback, in the failing trace', async () => {
  const seen = []
  const app = express()
  app.post(
    '/repair',
    express.raw({ type: 'application/json' }),
    repairEndpoint(sp, {
      secret: server.secret,
      fulfil: (event, callback) => {
        // Read synchronously: the test's context manager is a plain stack.
        seen.push({ span: api.trace.getActiveSpan(), callback })
      },
    }),
  )
  const repair = await new Promise((resolve) => {
    const listening = http.createServer(app).listen(0, '127.0.0.1', () => resolve(listening))
  })
  const headers = []
  repair.prependListener('request', (req) => headers.push(req.headers.traceparent))
  try {
    await sp.updateProject({ repairUrl: `http://127.0.0.1:${repair.address().port}/repair` })
    const eventId = unique('evt_node_repair')
    const worker = tracer.startSpan('apply credits')
    const failure = await api.context.with(api.trace.setSpan(api.context.active(), worker), () =>
      sp.receipt({ provider: 'stripe', eventId, eventType: 'invoice.paid' }).then(() =>
        api.context.with(api.trace.setSpan(api.context.active(), worker), () =>
          sp.failure({ provider: 'stripe', eventId, error: 'ledger locked' }),
        ),
      ),
    )
    worker.end()
    await sp.reprocess(failure.incident.id, { note: 'retry' })
    for (let i = 0; i < 200 && seen.length === 0; i += 1) await new Promise((r) => setTimeout(r, 50))
    assert.equal(seen.length, 1, 'the repair callback arrived')
    const [, traceId, callbackSpan] = headers[0].split('-')
    assert.equal(traceId, worker.spanContext().traceId)
    const repairSpan = seen[0].span
    assert.ok(repairSpan, 'fulfil runs inside a span')
    assert.equal(repairSpan.spanContext().traceId, worker.spanContext().traceId)
    assert.equal(repairSpan.parentSpanContext.spanId, callbackSpan)
    assert.equal(repairSpan.attributes['sendpromptly.reprocess_id'], seen[0].callback.reprocess_id)
  } finally {
    await new Promise((resolve) => repair.close(resolve))
  }
})
