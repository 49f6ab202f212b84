// The package loads with `import` (named and default exports) and `require`.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import SendPromptlyDefault, { SendPromptly, SendPromptlyError, ConfigurationError, stripe, shopify, verifyRepairRequest } from 'sendpromptly'

const require = createRequire(import.meta.url)

test('import and require give the same objects', () => {
  const cjs = require('sendpromptly')
  assert.equal(SendPromptlyDefault, SendPromptly)
  assert.equal(cjs.SendPromptly, SendPromptly)
  assert.equal(cjs.SendPromptlyError, SendPromptlyError)
  assert.equal(typeof stripe.verify, 'function')
  assert.equal(typeof shopify.verify, 'function')
  assert.equal(typeof verifyRepairRequest, 'function')
})

test('configuration errors are thrown by the constructor', () => {
  assert.throws(() => new SendPromptly({ apiKey: 'not-a-key', baseUrl: 'http://127.0.0.1:1' }), ConfigurationError)
  assert.throws(() => new SendPromptly({ apiKey: 'sp_x', baseUrl: 'ftp://x' }), ConfigurationError)
  assert.throws(() => new SendPromptly({ apiKey: 'sp_x', baseUrl: 'http://x', retry: { jitter: 2 } }), ConfigurationError)
  assert.throws(() => new SendPromptly({ apiKey: 'sp_x', baseUrl: 'http://x', retry: { retryOn: ['sometimes'] } }), ConfigurationError)
  const sp = new SendPromptly({ apiKey: 'sp_x', baseUrl: 'http://127.0.0.1:1/prefix', retry: { maxAttempts: 1, retryOn: [] } })
  assert.equal(sp.baseUrl, 'http://127.0.0.1:1/prefix/')
})

test('the integrations load by their subpaths with import, without loading their frameworks', async () => {
  const express = await import('sendpromptly/express')
  const fastify = await import('sendpromptly/fastify')
  const next = await import('sendpromptly/next')
  const bullmq = await import('sendpromptly/bullmq')
  assert.equal(typeof express.stripeWebhook, 'function')
  assert.equal(typeof fastify.repairEndpoint, 'function')
  assert.equal(typeof next.repairHandler, 'function')
  assert.equal(typeof bullmq.withEvent, 'function')
  for (const framework of ['express', 'fastify', 'bullmq']) {
    assert.ok(!Object.keys(require.cache).some((p) => p.includes(`node_modules/${framework}/`)), `${framework} was loaded`)
  }
  // The same SDK objects behind both entries.
  assert.deepEqual(bullmq.withEvent({ provider: 'stripe', eventId: 'evt_1' }, { a: 1 }), { a: 1, sendpromptly: { provider: 'stripe', eventId: 'evt_1' } })
  assert.throws(() => express.stripeWebhook({}), ConfigurationError)
})
