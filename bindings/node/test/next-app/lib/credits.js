// The app's own business effect: add credits to the invoice's customer.
// A customer whose id contains `fail` has no billing account until support
// fixes it: the test creates `fixed-<customer>` in $NEXT_FIXTURE_STATE_DIR.
// Each applied effect is a line of $NEXT_FIXTURE_STATE_DIR/applied.jsonl.
import fs from 'node:fs'
import path from 'node:path'

function stateDir() {
  const dir = process.env.NEXT_FIXTURE_STATE_DIR
  if (!dir) throw new Error('NEXT_FIXTURE_STATE_DIR is not set')
  return dir
}

export async function addCredits(eventId, customer) {
  if (!customer) throw new TypeError('the invoice has no customer')
  if (customer.includes('fail') && !fs.existsSync(path.join(stateDir(), `fixed-${customer}`))) {
    throw new Error(`no billing account for ${customer}`)
  }
  fs.appendFileSync(path.join(stateDir(), 'applied.jsonl'), JSON.stringify({ eventId, customer, pid: process.pid }) + '\n')
}
