'use strict'
// Next.js App Router integration of SendPromptly: route handlers on the
// Web Fetch API, `(request: Request) => Promise<Response>`:
//
//   // app/api/webhooks/stripe/route.js
//   import { stripeWebhook } from 'sendpromptly/next'
//   export const POST = stripeWebhook(sp, {}, async (event) => { await queue(event) })
//
//   // app/api/sendpromptly/repair/route.js
//   export const POST = repairHandler(sp, { fulfil: (event) => applyEffect(event) })

const { needClient, needFunction, acceptWebhook, handleRepair } = require('./common.js')

async function bytes(request) {
  return new Uint8Array(await request.arrayBuffer())
}

function webhook(provider, sp, options, handler) {
  needClient(sp, `${provider}Webhook(sp, options, handler)`)
  needFunction(handler, `${provider}Webhook(sp, options, handler): handler`)
  return async function POST(request, context) {
    const accepted = await acceptWebhook(sp, provider, await bytes(request), request.headers, options ?? {})
    if (accepted.status) return Response.json(accepted.body, { status: accepted.status })
    const answer = await handler(accepted.event, request, { receipt: accepted.receipt, context })
    return answer instanceof Response ? answer : Response.json(answer ?? { received: true })
  }
}

/** Route handler: verifies a Stripe webhook, sends its receipt, calls `handler(event, request)`. */
const stripeWebhook = (sp, options, handler) => webhook('stripe', sp, options, handler)
/** Route handler: verifies a Shopify webhook, sends its receipt, calls `handler(delivery, request)`. */
const shopifyWebhook = (sp, options, handler) => webhook('shopify', sp, options, handler)

/** Route handler of the repair endpoint: verify, `fulfil(event, callback)`, report with the `reprocess_id`. */
function repairHandler(sp, options = {}) {
  needClient(sp, 'repairHandler(sp, options)')
  needFunction(options.fulfil, 'repairHandler(sp, { fulfil }): fulfil')
  return async function POST(request) {
    const answer = await handleRepair(sp, await bytes(request), request.headers, options)
    return Response.json(answer.body, { status: answer.status })
  }
}

module.exports = { stripeWebhook, shopifyWebhook, repairHandler }
