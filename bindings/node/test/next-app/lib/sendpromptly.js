// The app's SendPromptly client: SENDPROMPTLY_API_KEY and SENDPROMPTLY_URL
// from the environment, read on the first request. Not at import: `next
// build` imports every route module ("Collecting page data"), and a
// module-level `new SendPromptly()` throws a ConfigurationError there when
// the build has no SENDPROMPTLY_API_KEY.
import { SendPromptly } from 'sendpromptly'

let client
export function sp() {
  client ??= new SendPromptly()
  return client
}

/** A route handler made on its first request by `make(sp())`. */
export function lazyRoute(make) {
  let handler
  return (request, context) => (handler ??= make(sp()))(request, context)
}
