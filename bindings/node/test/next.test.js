'use strict'
// sendpromptly/next route handlers, called with real Fetch `Request`
// objects built from each HTTP request by a minimal loopback server (what
// Next.js does in front of an App Router route), see integration-scenario.js.

const http = require('node:http')
const { stripeWebhook, shopifyWebhook, repairHandler } = require('sendpromptly/next')
const { runScenario } = require('./integration-scenario.js')

/** Serves `routes` (`{ path: (request: Request) => Promise<Response> }`) on loopback. */
async function serveRoutes(routes) {
  const server = http.createServer(async (req, res) => {
    const chunks = []
    for await (const chunk of req) chunks.push(chunk)
    const url = `http://${req.headers.host}${req.url}`
    const headers = new Headers()
    for (const [name, value] of Object.entries(req.headers)) headers.set(name, Array.isArray(value) ? value.join(', ') : value)
    const request = new Request(url, { method: req.method, headers, body: req.method === 'GET' ? undefined : Buffer.concat(chunks) })
    const route = routes[new URL(url).pathname]
    const response = route ? await route(request) : new Response('not found', { status: 404 })
    res.writeHead(response.status, Object.fromEntries(response.headers))
    res.end(Buffer.from(await response.arrayBuffer()))
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    close: () => new Promise((resolve) => server.close(resolve)),
  }
}

runScenario('next', (sp, app) =>
  serveRoutes({
    '/webhooks/stripe': stripeWebhook(sp, { secret: app.stripeSecret, receipt: app.receipt }, (event) => app.stripe(event)),
    '/webhooks/shopify': shopifyWebhook(sp, { secret: app.shopifySecret, receipt: app.receipt }, (delivery) => app.shopify(delivery)),
    '/sendpromptly/repair': repairHandler(sp, { secret: app.signingSecret, fulfil: (event) => app.fulfil(event) }),
  }),
)
