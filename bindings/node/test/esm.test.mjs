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
