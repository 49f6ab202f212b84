'use strict'
// `sendpromptly/next` inside a real Next.js App Router app: the fixture
// test/next-app (route handlers app/api/webhooks/stripe/route.js and
// app/api/sendpromptly/repair/route.js) is built with `next build` and served
// by `next start` on a free loopback port, against a real `sendpromptly
// serve`. Unlike next.test.js (the handlers on hand-made `Request`s), Next
// itself parses the requests, runs the handlers and loads `sendpromptly`
// from the app's node_modules as an external package (serverExternalPackages).
//
// The fixture's effect (lib/credits.js) writes each applied effect to
// $NEXT_FIXTURE_STATE_DIR/applied.jsonl; a customer whose id contains `fail`
// throws until the file `fixed-<customer>` exists there.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { spawn } = require('node:child_process')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')
const { SendPromptly, NotFoundError } = require('..')
const { startServer } = require('./server.js')
const h = require('./integration-helpers.js')

const packageDir = path.resolve(__dirname, '..')
const appDir = path.join(__dirname, 'next-app')
const nextBin = require.resolve('next/dist/bin/next')

/** Lays this package into the fixture's node_modules/sendpromptly as npm installs it (package.json `files`). */
function installSdk() {
  const target = path.join(appDir, 'node_modules', 'sendpromptly')
  fs.rmSync(target, { recursive: true, force: true })
  fs.mkdirSync(target, { recursive: true })
  const manifest = JSON.parse(fs.readFileSync(path.join(packageDir, 'package.json'), 'utf8'))
  const entries = ['package.json']
  for (const entry of manifest.files) {
    if (entry.startsWith('*')) entries.push(...fs.readdirSync(packageDir).filter((name) => name.endsWith(entry.slice(1))))
    else entries.push(entry.replace(/\/$/, ''))
  }
  assert.ok(entries.some((name) => name.endsWith('.node')), `no native module in ${packageDir}: run npm install there`)
  for (const entry of entries) {
    const from = path.join(packageDir, entry)
    const to = path.join(target, entry)
    fs.mkdirSync(path.dirname(to), { recursive: true })
    if (entry.endsWith('.node')) {
      try {
        fs.linkSync(from, to) // ~100 MB in debug: a hard link, a copy only across devices
      } catch {
        fs.copyFileSync(from, to)
      }
    } else {
      fs.cpSync(from, to, { recursive: true })
    }
  }
}

/** The environment of `next`: none of this process's SendPromptly or webhook settings, no test-runner context. */
function nextEnv(extra = {}) {
  const env = { ...process.env }
  for (const name of Object.keys(env)) {
    if (/^(SENDPROMPTLY_|STRIPE_|SHOPIFY_|NEXT_|NODE_TEST_CONTEXT$|NODE_ENV$)/.test(name)) delete env[name]
  }
  return { ...env, NEXT_TELEMETRY_DISABLED: '1', ...extra }
}

/** Runs `next <args>` in the fixture (own process group); `{ child, output(), exited }`. */
function runNext(args, env) {
  const child = spawn(process.execPath, [nextBin, ...args], { cwd: appDir, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (chunk) => (output += chunk))
  child.stderr.on('data', (chunk) => (output += chunk))
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
  return { child, output: () => output, exited }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

/** `next start` on a free loopback port, ready when the webhook route answers a GET with 405. */
async function nextStart(env) {
  const port = await freePort()
  const next = runNext(['start', '--hostname', '127.0.0.1', '--port', String(port)], env)
  const url = `http://127.0.0.1:${port}`
  const started = Date.now()
  for (;;) {
    if (next.child.exitCode !== null) throw new Error(`next start exited (${next.child.exitCode}):\n${next.output()}`)
    try {
      const res = await fetch(`${url}/api/webhooks/stripe`)
      assert.equal(res.status, 405, `GET on a POST-only route: ${await res.text()}`)
      break
    } catch (err) {
      if (err instanceof assert.AssertionError) throw err
      if (Date.now() - started > 60_000) throw new Error(`next start did not answer within 60 s:\n${next.output()}`)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
  return {
    url,
    output: next.output,
    /** SIGTERM to its process group (SIGKILL after 5 s); resolves to how it ended. */
    async stop() {
      if (next.child.exitCode !== null || next.child.signalCode !== null) return next.exited
      const signal = (name) => {
        try {
          process.kill(-next.child.pid, name)
        } catch {
          // already gone
        }
      }
      signal('SIGTERM')
      const timer = setTimeout(() => signal('SIGKILL'), 5000)
      const how = await next.exited
      clearTimeout(timer)
      return how
    },
  }
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

let server
let sp
let web
let stateDir

/** What the Next app applied, from its applied.jsonl. */
function applied() {
  const file = path.join(stateDir, 'applied.jsonl')
  if (!fs.existsSync(file)) return []
  return fs.readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).map((line) => JSON.parse(line))
}

before(async () => {
  installSdk()
  // The build gets no SendPromptly or Stripe setting at all: the app must build without secrets.
  const build = runNext(['build'], nextEnv())
  const built = await build.exited
  assert.equal(built.code, 0, `next build failed:\n${build.output()}`)
  assert.match(build.output(), /ƒ \/api\/webhooks\/stripe/)
  assert.match(build.output(), /ƒ \/api\/sendpromptly\/repair/)

  server = await startServer()
  sp = new SendPromptly({ apiKey: server.apiKey, baseUrl: server.url, logger: h.memoryLogger() })
  stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sendpromptly-next-real-'))
  web = await nextStart(
    nextEnv({
      SENDPROMPTLY_API_KEY: server.apiKey,
      SENDPROMPTLY_URL: server.url,
      SENDPROMPTLY_SIGNING_SECRET: server.secret,
      STRIPE_WEBHOOK_SECRET: h.STRIPE_SECRET,
      NEXT_FIXTURE_STATE_DIR: stateDir,
    }),
  )
  const project = await sp.updateProject({ repairUrl: `${web.url}/api/sendpromptly/repair` })
  assert.equal(project.repair_url, `${web.url}/api/sendpromptly/repair`)
})

after(async () => {
  if (web) {
    const how = await web.stop()
    assert.ok(how.code !== null || how.signal !== null, 'next start stopped')
  }
  if (server) await server.stop()
  if (stateDir) fs.rmSync(stateDir, { recursive: true, force: true })
})

test('next start: a Stripe event signed by the stripe library gets 200, its receipt and success recorded', async () => {
  const customer = `cus_next_real_${process.pid}`
  const { id, payload, header } = h.signedStripeEvent({ customer })
  const res = await post(`${web.url}/api/webhooks/stripe`, payload, { 'stripe-signature': header })
  assert.equal(res.status, 200, res.text)
  assert.deepEqual(res.json, { received: true })

  const effect = applied().find((line) => line.eventId === id)
  assert.ok(effect, `the Next app applied ${id}: ${JSON.stringify(applied())}`)
  assert.equal(effect.customer, customer)
  assert.notEqual(effect.pid, process.pid, 'applied in the next start process')

  const view = await sp.getEvent('stripe', id)
  assert.equal(view.event.state, 'succeeded')
  assert.equal(view.event.event_type, 'invoice.paid')
  assert.equal(view.event.effect, 'credits.add')
  assert.equal(view.event.subject, customer)
  assert.equal(view.event.metadata.credits, 500)
  assert.equal(view.event.last_result.status, 'success')
  assert.equal(view.incident, null)
})

test('next start: a forged Stripe signature gets 400 and nothing is recorded or applied', async () => {
  const forged = h.signedStripeEvent({ secret: 'whsec_not_the_endpoint_secret', customer: 'cus_forged' })
  const res = await post(`${web.url}/api/webhooks/stripe`, forged.payload, { 'stripe-signature': forged.header })
  assert.equal(res.status, 400, res.text)
  assert.match(res.json.error, /signature/i)
  const unsigned = h.signedStripeEvent({ customer: 'cus_unsigned' })
  assert.equal((await post(`${web.url}/api/webhooks/stripe`, unsigned.payload, {})).status, 400)

  for (const id of [forged.id, unsigned.id]) {
    await assert.rejects(sp.getEvent('stripe', id), (err) => err instanceof NotFoundError && err.status === 404)
  }
  assert.deepEqual(
    applied().filter((line) => line.eventId === forged.id || line.eventId === unsigned.id),
    [],
  )
})

test('next start: a failing customer opens an incident; a reprocess calls the repair route, which resolves it', async () => {
  const customer = `cus_fail_next_real_${process.pid}`
  const { id, payload, header } = h.signedStripeEvent({ customer })
  const res = await post(`${web.url}/api/webhooks/stripe`, payload, { 'stripe-signature': header })
  assert.equal(res.status, 200, res.text)

  const failed = await sp.getEvent('stripe', id)
  assert.equal(failed.event.state, 'failed')
  assert.equal(failed.event.last_result.status, 'failure')
  assert.ok(failed.incident, 'an incident is open')
  assert.equal(failed.incident.kind, 'failed_result')
  assert.equal(failed.incident.state, 'open')
  const incident = await sp.getIncident(failed.incident.id)
  assert.equal(incident.incident.event.event_id, id)
  assert.equal(incident.incident.event.subject, customer)
  assert.match(incident.incident.last_error, new RegExp(`Error: no billing account for ${customer}`))
  assert.equal(applied().some((line) => line.eventId === id), false)

  // Reprocessed before support fixed the customer: the real server POSTs the
  // repair callback to the Next app, which fails again; recorded with its reprocess_id.
  const first = await sp.reprocess(failed.incident.id, { note: 'next-real test, unfixed' })
  const again = await h.eventually('the failed repair to be recorded with its reprocess_id', async () => {
    const r = await sp.getIncident(failed.incident.id)
    const entry = r.timeline.find((e) => e.kind === 'result.failure' && e.detail.reprocess_id === first.reprocess_id)
    return entry && r.incident.reprocess?.status === 'delivered' && { r, entry }
  })
  assert.match(again.entry.detail.error, new RegExp(`no billing account for ${customer}`))
  assert.notEqual(again.r.incident.state, 'resolved')
  assert.equal(applied().some((line) => line.eventId === id), false)

  // Support fixes the customer; the next reprocess succeeds in the repair route.
  fs.writeFileSync(path.join(stateDir, `fixed-${customer}`), '')
  const second = await sp.reprocess(failed.incident.id, { note: 'next-real test, fixed' })
  assert.notEqual(second.reprocess_id, first.reprocess_id)
  const resolved = await h.eventually('the repair to resolve the incident', async () => {
    const r = await sp.getIncident(failed.incident.id)
    return r.incident.state === 'resolved' && r
  })
  assert.equal(resolved.incident.resolution, 'success_result')
  assert.ok(
    resolved.timeline.some((e) => e.kind === 'result.success' && e.detail.reprocess_id === second.reprocess_id),
    JSON.stringify(resolved.timeline),
  )
  const repairedEffect = applied().filter((line) => line.eventId === id)
  assert.equal(repairedEffect.length, 1, JSON.stringify(repairedEffect))
  assert.equal(repairedEffect[0].customer, customer)
  assert.equal((await sp.getEvent('stripe', id)).event.state, 'succeeded')
})
