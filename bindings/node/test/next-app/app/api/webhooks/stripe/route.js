import { stripeWebhook } from 'sendpromptly/next'
import { lazyRoute } from '../../../../lib/sendpromptly.js'
import { addCredits } from '../../../../lib/credits.js'

// Verifies the signature with $STRIPE_WEBHOOK_SECRET, sends the receipt,
// then applies the effect inline, tracked: a failure is reported to
// SendPromptly (an incident), not retried by Stripe.
export const POST = lazyRoute((sp) =>
  stripeWebhook(sp, { receipt: { effect: 'credits.add', metadata: { credits: 500 } } }, async (event) => {
    await sp.track(event, () => addCredits(event.id, event.data.object.customer)).catch(() => {})
  }),
)
