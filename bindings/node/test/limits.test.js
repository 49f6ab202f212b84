'use strict'
// Page limits follow the contract (`sendpromptly_core::validation::MAX_PAGE_LIMIT`,
// what the server accepts): 1 to 100, refused before anything is sent.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const { SendPromptly, ValidationError } = require('..')

test('a page limit outside 1 to 100 is refused before sending, naming limit', async () => {
  // Nothing listens on port 9: a request that went out would fail otherwise.
  const sp = new SendPromptly({ apiKey: 'sp_live_x', baseUrl: 'http://127.0.0.1:9' })
  for (const limit of [0, 101, 1000, 2.5]) {
    for (const call of [() => sp.listIncidents({ limit }), () => sp.searchEvents({ limit })]) {
      await assert.rejects(call(), (err) => {
        assert.ok(err instanceof ValidationError, `${limit}: ${err}`)
        assert.equal(err.param, 'limit')
        assert.match(err.message, /whole number from 1 to 100/)
        return true
      })
    }
  }
})
