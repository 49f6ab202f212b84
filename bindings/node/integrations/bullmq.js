'use strict'
// BullMQ integration of SendPromptly: the job carries the event reference
// in its data; the worker's processor, wrapped, reports `success` when a
// job completes and `failure` only when it fails for good (its last
// attempt, or an `UnrecoverableError`), so a job that succeeds on a retry
// opens no incident:
//
//   const { withEvent, track } = require('sendpromptly/bullmq')
//   await queue.add('credits', withEvent(req.stripeEvent, { customer }), { attempts: 3, jobId: req.stripeEvent.id })
//   new Worker('credits', track(sp, async (job) => addCredits(job.data.customer)), { connection })

const { eventReference } = require('../index.js')
const { needClient, needFunction } = require('./common.js')

/** The data key the event reference travels under. */
const KEY = 'sendpromptly'

/** Job data carrying the event reference of `event` (verified event, repair callback or `{ provider, eventId }`). */
function withEvent(event, data = {}) {
  return { ...data, [KEY]: eventReference(event) }
}

// BullMQ's own control-flow errors: the job is moved, not failed.
const NOT_FAILURES = new Set(['DelayedError', 'WaitingChildrenError', 'WaitingError', 'RateLimitError'])

/** Whether this throw ends the job: its last allowed attempt, or unrecoverable. */
function isFinalFailure(job, err) {
  const name = err?.name ?? err?.constructor?.name
  if (NOT_FAILURES.has(name)) return false
  if (name === 'UnrecoverableError') return true
  const attempts = Math.max(1, Number(job.opts?.attempts ?? 1))
  return Number(job.attemptsMade ?? 0) + 1 >= attempts
}

/**
 * Wraps a BullMQ processor `(job, token) => result`. The event reference is
 * `job.data.sendpromptly` (see `withEvent`), or `options.event(job)`.
 */
function track(sp, processor, options = {}) {
  needClient(sp, 'track(sp, processor)')
  needFunction(processor, 'track(sp, processor): processor')
  const reference = typeof options.event === 'function' ? options.event : (job) => job?.data?.[KEY]
  return async function trackedProcessor(job, token) {
    let ref
    try {
      ref = reference(job)
    } catch (err) {
      sp.logger?.warn?.(`sendpromptly: no event reference for job ${job?.id}: ${err && err.message}`)
    }
    if (!ref) return processor(job, token)
    return sp.track(ref, () => processor(job, token), {
      metadata: options.metadata,
      failureIsFinal: (err) => isFinalFailure(job, err),
    })
  }
}

module.exports = { withEvent, track, isFinalFailure, KEY }
