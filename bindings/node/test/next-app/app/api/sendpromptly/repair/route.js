import { repairHandler } from 'sendpromptly/next'
import { lazyRoute } from '../../../../lib/sendpromptly.js'
import { addCredits } from '../../../../lib/credits.js'

// Verifies SendPromptly's repair callback with $SENDPROMPTLY_SIGNING_SECRET,
// applies the effect again and reports the result with the reprocess_id.
export const POST = lazyRoute((sp) => repairHandler(sp, { fulfil: (event) => addCredits(event.event_id, event.subject) }))
