import type SendPromptly from '../index'
import type { EventTargetLike, EventReference } from '../index'

/** The job data key the event reference travels under: `sendpromptly`. */
export declare const KEY: 'sendpromptly'

/** A BullMQ job, as far as the integration reads it. */
export interface JobLike {
  id?: string
  data: any
  opts: { attempts?: number }
  attemptsMade: number
}

/** Job data carrying the event reference (`data.sendpromptly`) of a verified event, repair callback or `{ provider, eventId }`. */
export declare function withEvent<D extends object>(event: EventTargetLike, data?: D): D & { sendpromptly: EventReference }

/** Whether `error` ends the job: its last allowed attempt, or an `UnrecoverableError`. */
export declare function isFinalFailure(job: JobLike, error: unknown): boolean

/**
 * Wraps a BullMQ processor: `success` when the job completes, `failure` when it fails for good
 * (a job that succeeds on a retry opens no incident). The error is rethrown unchanged.
 */
export declare function track<J extends JobLike, R>(
  sp: SendPromptly,
  processor: (job: J, token?: string) => Promise<R>,
  options?: { event?: (job: J) => EventTargetLike | null | undefined; metadata?: Record<string, unknown> },
): (job: J, token?: string) => Promise<R>
