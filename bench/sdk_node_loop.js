'use strict'
// The Node SDK in the loop (run by bench/sdk.sh): durable receipts per second
// from CONCURRENCY concurrent promises on one client against a real server
// (rate limit off), each receipt a new event with its own Idempotency-Key as
// every SDK call; then background mode's enqueue cost per signal and memory
// with a full queue (server unreachable). Prints `key=value` lines.
// Environment: SENDPROMPTLY_BENCH_URL, SENDPROMPTLY_BENCH_API_KEY,
// BENCH_DURATION (s, default 10), BENCH_PROMISES (256), BENCH_QUICK=1.

const path = require('node:path')
const { SendPromptly } = require(path.join(__dirname, '..', 'bindings', 'node'))

const QUICK = process.env.BENCH_QUICK === '1'
const DURATION = Number(process.env.BENCH_DURATION || (QUICK ? 1 : 10)) * 1000
const CONCURRENCY = Number(process.env.BENCH_PROMISES || (QUICK ? 8 : 256))
const RUN = Math.random().toString(36).slice(2, 10)
const url = process.env.SENDPROMPTLY_BENCH_URL
const apiKey = process.env.SENDPROMPTLY_BENCH_API_KEY

async function promises() {
  const sp = new SendPromptly({ apiKey, baseUrl: url })
  const stop = Date.now() + DURATION
  let done = 0
  const started = process.hrtime.bigint()
  async function worker(i) {
    let j = 0
    while (Date.now() < stop) {
      j++
      await sp.receipt({ provider: 'stripe', eventId: `evt_node_${RUN}_${i}_${j}`, eventType: 'invoice.paid', subject: 'cus_bench' })
      done++
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, (_, i) => worker(i)))
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  console.log(`node_promises=${CONCURRENCY}`)
  console.log(`node_promises_rps=${Math.round(done / seconds)}`)
}

async function background() {
  const capacity = Number(process.env.BENCH_BG_CAPACITY || (QUICK ? 2000 : 100000))
  const sp = new SendPromptly({ apiKey, baseUrl: 'http://127.0.0.1:9' })
  const bg = sp.background({ capacity })
  const settle = async () => {
    for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve))
    global.gc && global.gc()
    return process.memoryUsage().rss
  }
  const before = await settle()
  const started = process.hrtime.bigint()
  let taken = 0
  for (let i = 0; i < capacity; i++) {
    if (bg.receipt({ provider: 'stripe', eventId: `evt_nbg_${RUN}_${i}`, eventType: 'invoice.paid', subject: 'cus_bench' })) taken++
  }
  const us = Number(process.hrtime.bigint() - started) / 1000 / capacity
  const full = await settle()
  for (let i = 0; i < capacity; i++) {
    bg.receipt({ provider: 'stripe', eventId: `evt_nbgx_${RUN}_${i}`, eventType: 'invoice.paid', subject: 'cus_bench' })
  }
  const after = await settle()
  const stats = bg.stats()
  await bg.shutdown(100)
  console.log(`node_bg_enqueue_us=${us.toFixed(2)}`)
  console.log(`node_bg_accepted=${taken} of ${capacity}`)
  console.log(`node_bg_dropped_queue_full=${stats.droppedQueueFull}`)
  console.log(`node_bg_rss_full_queue_kib=${Math.round((full - before) / 1024)}`)
  console.log(`node_bg_bytes_per_queued_signal=${Math.round((full - before) / capacity)}`)
  console.log(`node_bg_rss_growth_past_capacity_kib=${Math.round((after - full) / 1024)}`)
}

async function main() {
  const what = process.argv[2] || 'all'
  if (what === 'promises' || what === 'all') await promises()
  if (what === 'background' || what === 'all') await background()
}

main().catch((err) => { console.error(err); process.exit(1) })
