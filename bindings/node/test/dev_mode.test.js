'use strict'
// Dev mode (logic in the Rust client): with SENDPROMPTLY_DEV=1 and no server,
// each signal is logged instead of sent and the calls succeed, so
// instrumentation can be added before SendPromptly is set up; production
// refuses it unless forced. Run in a child process to read its stderr.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const path = require('node:path')

const pkg = path.resolve(__dirname, '..')

function run(env, script) {
  const clean = { ...process.env }
  for (const name of ['SENDPROMPTLY_API_KEY', 'SENDPROMPTLY_URL', 'SENDPROMPTLY_ENV', 'NODE_ENV', 'SENDPROMPTLY_DEV']) {
    delete clean[name]
  }
  return spawnSync(process.execPath, ['-e', script], { env: { ...clean, ...env }, encoding: 'utf8', timeout: 60_000 })
}

test('SENDPROMPTLY_DEV=1 logs each signal instead of failing', () => {
  const child = run({ SENDPROMPTLY_DEV: '1' }, `
    const { SendPromptly } = require(${JSON.stringify(pkg)})
    ;(async () => {
      const sp = new SendPromptly()
      const receipt = await sp.receipt({ provider: 'stripe', eventId: 'evt_node_dev', eventType: 'invoice.paid' })
      const failed = await sp.failure({ provider: 'stripe', eventId: 'evt_node_dev', error: 'tenant missing' })
      console.log(JSON.stringify({ created: receipt.created, state: failed.event.state }))
    })().catch((err) => { console.error('FAILED', err); process.exit(1) })
  `)
  assert.equal(child.status, 0, child.stderr)
  assert.deepEqual(JSON.parse(child.stdout), { created: true, state: 'failed' })
  assert.match(child.stderr, /DEV MODE/)
  assert.match(child.stderr, /would POST \/v1\/receipt .*"event_id":"evt_node_dev"/)
  assert.match(child.stderr, /would POST \/v1\/result .*tenant missing/)
})

test('production refuses dev mode unless forced', () => {
  const script = `
    const { SendPromptly } = require(${JSON.stringify(pkg)})
    try { new SendPromptly(); console.log('built') } catch (err) { console.log(err.name + ': ' + err.message) }
  `
  const refused = run({ SENDPROMPTLY_DEV: '1', NODE_ENV: 'production' }, script)
  assert.match(refused.stdout, /NODE_ENV=production.*SENDPROMPTLY_DEV=force/)
  const forced = run({ SENDPROMPTLY_DEV: 'force', NODE_ENV: 'production' }, script)
  assert.match(forced.stdout, /built/)
})
