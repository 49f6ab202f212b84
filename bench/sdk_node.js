'use strict'
// SDK micro-benchmarks (Node): sendpromptly's native verifiers against the
// `standardwebhooks` and `stripe` npm packages on the same inputs (1 KiB and
// 16 KiB bodies). Microseconds per call, min/median/max over REPEATS rounds,
// and the ratio of medians. Run by bench/sdk.sh from bindings/node (which
// holds the dev dependencies); BENCH_QUICK=1 makes it a smoke run.

const path = require('node:path')
const nodeDir = path.join(__dirname, '..', 'bindings', 'node')
const load = (name) => require(require.resolve(name, { paths: [nodeDir] }))
const sdk = require(nodeDir)
const Stripe = load('stripe')
const { Webhook } = load('standardwebhooks')

const QUICK = process.env.BENCH_QUICK === '1'
const REPEATS = QUICK ? 3 : 7
const NUMBER = QUICK ? 200 : 5000
const whsec = 'whsec_' + Buffer.from('0123456789abcdef0123456789abcdef').toString('base64')
const stripeSecret = 'whsec_bench_stripe_secret'
const official = new Stripe('sk_test_placeholder')

function measure(fn) {
  fn()
  for (let i = 0; i < NUMBER / 10; i++) fn() // JIT warm-up
  const rounds = []
  for (let r = 0; r < REPEATS; r++) {
    const start = process.hrtime.bigint()
    for (let i = 0; i < NUMBER; i++) fn()
    rounds.push(Number(process.hrtime.bigint() - start) / 1000 / NUMBER)
  }
  return rounds.sort((a, b) => a - b)
}
const median = (xs) => xs[Math.floor(xs.length / 2)]
const fmt = (xs) => `min ${xs[0].toFixed(2).padStart(8)}  median ${median(xs).toFixed(2).padStart(8)}  max ${xs[xs.length - 1].toFixed(2).padStart(8)} us`
function report(name, ours, theirs, peer) {
  console.log(`${name}\n  sendpromptly: ${fmt(ours)}\n  ${peer.padEnd(12)}: ${fmt(theirs)}\n  speed-up (median ${peer} / median sendpromptly): ${(median(theirs) / median(ours)).toFixed(2)}x`)
}

function callbackBody(size) {
  const doc = {
    type: 'reprocess.requested', reprocess_id: 'rep_01BENCH', incident_id: 'inc_01BENCH', attempt: 1,
    requested_at: '2026-11-22T10:00:00Z', requested_by: 'console:alice@example.com',
    event: { provider: 'stripe', event_id: 'evt_1', event_type: 'invoice.paid', subject: 'cus_1', metadata: { pad: '' } },
  }
  doc.event.metadata.pad = 'x'.repeat(Math.max(0, size - JSON.stringify(doc).length))
  return JSON.stringify(doc)
}
function stripePayload(size) {
  const doc = { id: 'evt_1', object: 'event', type: 'invoice.paid', created: 1763800000, livemode: false,
    data: { object: { id: 'in_1', object: 'invoice', customer: 'cus_9s8d7f', amount_paid: 500, description: '' } } }
  doc.data.object.description = 'x'.repeat(Math.max(0, size - JSON.stringify(doc).length))
  return JSON.stringify(doc)
}

for (const size of [1024, 16384]) {
  const body = callbackBody(size)
  const buf = Buffer.from(body)
  const at = new Date()
  const headers = {
    'webhook-id': 'rep_01BENCH',
    'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
    'webhook-signature': new Webhook(whsec).sign('rep_01BENCH', at, body),
  }
  const peer = new Webhook(whsec)
  if (sdk.verifyRepairRequest(buf, headers, whsec).reprocessId !== 'rep_01BENCH' &&
      sdk.verifyRepairRequest(buf, headers, whsec).reprocess_id !== 'rep_01BENCH') throw new Error('bad callback')
  report(`Standard Webhooks verify, ${body.length} B body (verify + parse)`,
    measure(() => sdk.verifyRepairRequest(buf, headers, whsec)),
    measure(() => peer.verify(body, headers)), 'standardwebhooks')

  const payload = stripePayload(size)
  const pbuf = Buffer.from(payload)
  const header = official.webhooks.generateTestHeaderString({ payload, secret: stripeSecret })
  report(`Stripe verify, ${payload.length} B payload (verify + parse to an event)`,
    measure(() => sdk.stripe.verify(pbuf, header, stripeSecret)),
    measure(() => official.webhooks.constructEvent(pbuf, header, stripeSecret)), 'stripe')
}
