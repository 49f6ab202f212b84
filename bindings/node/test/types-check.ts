import SendPromptly, { stripe, verifyRepairRequest, InvalidSignatureError, type SignalResponse } from '../index'
const sp = new SendPromptly({ apiKey: 'sp_x', baseUrl: 'http://x', retry: { totalBudgetMs: 1000 } })
async function f(): Promise<SignalResponse> {
  const ev = stripe.verify(new Uint8Array(), 'h', 's', { tolerance: 10 })
  const cb = verifyRepairRequest('x', new Headers(), ['a'])
  await sp.success({ provider: cb.event.provider, eventId: cb.event.event_id, reprocessId: cb.reprocess_id })
  const bg = sp.background({ onDrop: (d) => console.log(d.reason, d.error?.requestId) })
  bg.receipt({ provider: 'stripe', eventId: ev.id, eventType: ev.type, occurredAt: new Date() })
  return sp.receipt({ provider: 'stripe', eventId: ev.id, eventType: ev.type, metadata: { a: 1 } })
}
try {} catch (e) { if (e instanceof InvalidSignatureError) console.log(e.code, e.category) }
f()
async function batches(): Promise<number> {
  const plan = await sp.planReprocessBatch({ eventType: 'invoice.paid', state: 'open', openedAfter: new Date() })
  const batch = await sp.startReprocessBatch({ incidentIds: ['inc_1'], ratePerSecond: 5, concurrency: 2, note: 'n' })
  const view = await sp.reprocessBatch(batch.id)
  await sp.cancelReprocessBatch(view.id)
  return plan.to_send + view.counts.resolved
}
batches()
// Integrations and track.
import { stripeWebhook as expressStripe, repairEndpoint } from '../integrations/express'
import { stripeWebhook as fastifyStripe } from '../integrations/fastify'
import { stripeWebhook as nextStripe, repairHandler } from '../integrations/next'
import { withEvent, track } from '../integrations/bullmq'
import { eventReference, type EventReference } from '../index'
async function integrations(): Promise<number> {
  const ev = stripe.verify('x', 'h', 's')
  const ref: EventReference = eventReference(ev)
  const credit = sp.track(async (e: typeof ev, n: number) => n + 1)
  const n: number = await credit(ev, 1)
  const m: string = await sp.track(ref, async () => 'ok', { metadata: { a: 1 } })
  await sp.receiptFor(ev, { effect: 'credits.add' })
  await sp.failureFor(ev, new Error('x'))
  expressStripe(sp, { receipt: (e) => ({ effect: e.type }) })
  repairEndpoint(sp, { fulfil: async (event) => event.event_id })
  fastifyStripe(sp, { path: '/w' }, async (request) => request.stripeEvent.id)
  const post: (r: Request) => Promise<Response> = nextStripe(sp, {}, async (event) => new Response(event.id))
  repairHandler(sp, { secret: ['a', 'b'], fulfil: () => undefined })
  const data = withEvent(ev, { customer: 'c' })
  const processor = track(sp, async (job: { data: typeof data; opts: { attempts?: number }; attemptsMade: number }) => job.data.customer)
  await post(new Request('http://x'))
  return n + m.length + (await processor({ data, opts: {}, attemptsMade: 0 })).length
}
integrations()
async function newer(): Promise<string> {
  const detail = await sp.getIncident('inc_1')
  // A newer server's values type-check as plain strings; the known ones still narrow.
  const kind: string = detail.incident.kind
  const open: boolean = detail.incident.state === 'open'
  return `${kind} ${open} ${detail.event.state}`
}
newer()
