// Public types of the `sendpromptly` package. The option interfaces are
// generated from the Rust source into `native.d.ts` (checked for drift by
// `npm run check:generated`) and re-exported here; the classes, the answers'
// JSON shapes and the error classes are declared here.

import type {
  BackgroundStatsView,
  EventFilterOptions,
  IncidentFilterOptions,
  NativeClientOptions,
  ReceiptOptions as NativeReceiptOptions,
  ResultOptions,
  RetryOptions,
  BackgroundOptions as NativeBackgroundOptions,
  ReprocessBatchOptions as NativeReprocessBatchOptions,
} from './native'

export type { EventFilterOptions, IncidentFilterOptions, ResultOptions, RetryOptions }

/** Where an event came from. */
export type Provider = 'stripe' | 'shopify' | 'custom'

/** Where integrations and `track` log what they could not send. */
export interface Logger {
  warn(message: string): void
}

/** How a client is built; `apiKey` and `baseUrl` fall back to `SENDPROMPTLY_API_KEY` and `SENDPROMPTLY_URL`. */
export interface ClientOptions extends NativeClientOptions {
  /** Where integrations and `track` log signals they could not send (default `console`). */
  logger?: Logger
}

/** An event reference: what a job carries to its worker. */
export interface EventReference {
  provider: Provider | string
  eventId: string
  /** The repair callback (`rep_…`) being answered, if any. */
  reprocessId?: string
  /** Needed by `receiptFor` when the reference is not a verified event. */
  eventType?: string
}

/** What `receiptFor` takes: a verified Stripe event or Shopify delivery (or a reference with its `eventType`). */
export type ReceiptSource = StripeEvent | ShopifyDelivery | (EventReference & { eventType: string })
/** What `successFor`, `failureFor` and `track` take: a verified event, a repair callback or a reference. */
export type EventTargetLike = StripeEvent | ShopifyDelivery | RepairCallback | EventReference

/** Extra receipt fields for `receiptFor` (its metadata entries are added to the event's). */
export type ReceiptForOptions = Partial<Omit<ReceiptOptions, 'provider' | 'eventId'>>
/** Extra result fields for `successFor`/`failureFor`. */
export type ResultForOptions = Partial<Omit<SignalResultOptions, 'provider' | 'eventId' | 'status' | 'error'>>

/** Options of `sp.track`. */
export interface TrackOptions<A extends unknown[] = unknown[]> {
  /** The event reference from the wrapped function's arguments (default: the first). */
  event?: (...args: A) => EventTargetLike | null | undefined
  /** Return `false` to report nothing for this error (e.g. a job that will be retried). */
  failureIsFinal?: (error: unknown) => boolean
  /** A JSON object sent with the result. */
  metadata?: Record<string, unknown>
}

/** The event reference of a verified event or repair callback: `{ provider, eventId, reprocessId? }`. */
export declare function eventReference(source: EventTargetLike): EventReference

/** A receipt's options; `occurredAt` may also be a `Date`. */
export interface ReceiptOptions extends Omit<NativeReceiptOptions, 'occurredAt' | 'metadata'> {
  /** When the provider says the event happened. */
  occurredAt?: string | Date | null
  /** A JSON object (at most 8 KiB serialised) kept with the event and sent back in repair callbacks. */
  metadata?: Record<string, unknown> | null
}

/** Options of `success()`, `failure()` and `result()`; `error` may be an `Error` (its message is sent). */
export interface SignalResultOptions extends Omit<ResultOptions, 'error' | 'metadata'> {
  /** What went wrong (expected with `failure`, at most 4 KiB). */
  error?: string | Error | null
  /** A JSON object (at most 8 KiB serialised). */
  metadata?: Record<string, unknown> | null
}

/** What a reprocess batch selects (filter fields or `incidentIds`, not both) and its pacing; the times may also be `Date`s. */
export interface ReprocessBatchOptions extends Omit<NativeReprocessBatchOptions, 'openedAfter' | 'openedBefore' | 'state' | 'kind' | 'provider'> {
  /** Only incidents in this state. */
  state?: 'open' | 'reprocessing' | 'resolved' | null
  /** Only this kind. */
  kind?: 'missing_result' | 'failed_result' | null
  /** Only this provider. */
  provider?: Provider | null
  /** Only incidents opened at or after this time. */
  openedAfter?: string | Date | null
  /** Only incidents opened before this time. */
  openedBefore?: string | Date | null
}

/** One incident of a batch or a plan and where it stands. */
export interface ReprocessBatchItem {
  incident_id: string
  event_type: string | null
  subject: string | null
  state: 'pending' | 'skipped' | 'cancelled' | 'sent' | 'delivered' | 'failed' | 'resolved'
  /** Why it is skipped: `callback_in_flight`, `incident_resolved`, `no_repair_url`, `incident_not_found`. */
  reason: string | null
  /** The `rep_` id once sent. */
  reprocess_id: string | null
}

/** A dry run's answer: what a batch with these options would do. */
export interface ReprocessBatchPlan {
  dry_run: true
  total: number
  to_send: number
  skipped: number
  by_event_type: Record<string, number>
  skipped_by_reason: Record<string, number>
  /** The first 50 selected incidents. */
  incidents: ReprocessBatchItem[]
}

/** A reprocess batch and its progress (derived from its items, the outbox and the incidents). */
export interface ReprocessBatchView {
  /** The `rpb_` id. */
  id: string
  state: 'running' | 'completed' | 'cancelled'
  rate_per_second: number
  concurrency: number
  started_by: string
  note: string | null
  created_at: string
  finished_at: string | null
  counts: {
    total: number
    pending: number
    skipped: number
    cancelled: number
    sent: number
    in_flight: number
    delivered: number
    failed: number
    resolved: number
  }
  /** The first 100 items, in batch order. */
  items: ReprocessBatchItem[]
}

/** Counters of background mode since it started. */
export type BackgroundStats = BackgroundStatsView

/** A signal background mode could not deliver, as passed to `onDrop`. */
export interface DroppedSignal {
  /** `receipt` or `result`. */
  kind: 'receipt' | 'result'
  /** The signal as it would have been sent (the API's JSON body). */
  signal: Record<string, any>
  /** E.g. `receipt stripe/evt_1`. */
  description: string
  /** The idempotency key it was (or would have been) sent with. */
  idempotencyKey: string
  /** Why it was dropped. */
  reason: 'queue_full' | 'closed' | 'invalid' | 'gave_up' | 'rejected' | 'shutdown'
  /** The reason for a person. */
  reasonText: string
  /** The last error, when it was sent. */
  error: SendPromptlyError | null
}

/** Settings of background mode. */
export interface BackgroundOptions extends NativeBackgroundOptions {
  /** Called on the JavaScript thread for every dropped signal; exceptions it throws become process warnings. */
  onDrop?: (dropped: DroppedSignal) => void
}

/**
 * A value a newer server may extend: one of the listed names, or a name
 * this version does not know, passed through as the server sent it.
 */
export type OrNewer<T extends string> = T | (string & {})

/** One entry of a timeline (append-only). `kind` and `actor` may be values a newer server added, passed through as sent. */
export interface TimelineEntry {
  at: string
  kind: string
  actor: string
  detail: Record<string, any>
}

/** An event as the API returns it (enums may hold a newer server's values, as sent). */
export interface EventView {
  provider: OrNewer<Provider>
  event_id: string
  event_type: string | null
  subject: string | null
  effect: string | null
  metadata: Record<string, any> | null
  occurred_at: string | null
  state: OrNewer<'awaiting_receipt' | 'awaiting_result' | 'succeeded' | 'failed' | 'overdue'>
  received_at: string | null
  deadline_at: string | null
  deliveries: number
  result_at: string | null
  last_result: { status: 'success' | 'failure'; error?: string; reprocess_id?: string; [key: string]: any } | null
  incident_id: string | null
  [key: string]: any
}

/** An incident as the API returns it (enums may hold a newer server's values, as sent). */
export interface IncidentView {
  id: string
  kind: OrNewer<'missing_result' | 'failed_result' | 'missing_receipt'>
  state: OrNewer<'open' | 'reprocessing' | 'resolved'>
  resolution: OrNewer<'success_result' | 'manual' | 'receipt_arrived'> | null
  opened_at: string
  resolved_at: string | null
  last_error: string | null
  reopen_count: number
  reprocess_count: number
  reprocess: Record<string, any> | null
  event: { provider: OrNewer<Provider>; event_id: string; event_type: string | null; subject: string | null }
  [key: string]: any
}

/** What the SDK adds to a signal's answer. */
export interface ResponseMeta {
  /** The HTTP status (201 new event, 200 otherwise). */
  status: number
  /** The server's `Request-Id`. */
  requestId: string | null
  /** Whether the server replayed an earlier answer for the same idempotency key. */
  replayed: boolean
  /** Attempts the call made. */
  attempts: number
  /** The `Idempotency-Key` the call was sent with. */
  idempotencyKey: string | null
}

/** The answer to a receipt or result. */
export interface SignalResponse {
  event: EventView
  incident: IncidentView | null
  /** Facts about the call. */
  meta: ResponseMeta
  /** `true` for a new event (201), `false` for a duplicate delivery. */
  created: boolean
}

/** One event with its timeline and incident. */
export interface EventDetail {
  event: EventView
  incident: IncidentView | null
  timeline: TimelineEntry[]
}

/** One incident, its event and full timeline. */
export interface IncidentDetail {
  incident: IncidentView
  event: EventView
  timeline: TimelineEntry[]
}

/** A page of a list; pass `next_cursor` as `cursor` for the next one. */
export interface Page<T> {
  data: T[]
  next_cursor: string | null
}

/** A created proof link (its URL is shown once). */
export interface ProofLinkCreated {
  id: string
  url: string
  expires_at: string
}

/** A proof link without its URL. */
export interface ProofLinkView {
  id: string
  incident_id: string
  created_by: string
  created_at: string
  expires_at: string
  revoked_at: string | null
}

/** The project's settings. */
export interface ProjectView {
  id: string
  name: string
  repair_url: string | null
  default_deadline_seconds: number
  deadlines_by_event_type: Record<string, number>
  alert_channels: any
  proof_show_metadata: boolean
  signing_secrets: { created_at: string; expires_at: string | null }[]
  created_at: string
  [key: string]: any
}

/** Changes to the project's settings; `repairUrl: null` clears it. */
export interface ProjectUpdate {
  repairUrl?: string | null
  defaultDeadlineSeconds?: number
  deadlinesByEventType?: Record<string, number>
  alertChannels?: any
  proofShowMetadata?: boolean
}

/** The body of a verified repair callback. */
export interface RepairCallback {
  type: 'reprocess.requested'
  reprocess_id: string
  incident_id: string
  attempt: number
  requested_at: string
  requested_by: string
  event: {
    provider: Provider
    event_id: string
    event_type: string
    subject?: string
    effect?: string
    metadata?: Record<string, any>
  }
}

/** A verified Stripe event, as Stripe sent it. */
export interface StripeEvent {
  id: string
  type: string
  object?: 'event'
  created?: number
  livemode?: boolean
  data: { object: Record<string, any>; previous_attributes?: Record<string, any> }
  [key: string]: any
}

/** A verified Shopify delivery. */
export interface ShopifyDelivery {
  /** `X-Shopify-Topic`, e.g. `orders/paid`. */
  topic: string
  subTopic: string | null
  shopDomain: string
  /** Unique per delivery. */
  webhookId: string
  /** Shared by all deliveries of one event (absent on older API versions). */
  eventId: string | null
  /** The event id to report: `eventId`, else `webhookId`. */
  dedupeId: string
  triggeredAt: string | null
  apiVersion: string
  /** The parsed JSON body. */
  body: Record<string, any>
}

/** A raw request body, exactly as received: a `Buffer` (a `Uint8Array`), a `Uint8Array`, an `ArrayBuffer` or a string. */
export type RawBody = Uint8Array | ArrayBuffer | string

/** Request headers: a plain object (Node/Express), a Fetch `Headers`, a `Map` or `[name, value]` pairs; names in any case. */
export type HeadersLike =
  | Record<string, string | string[] | undefined>
  | Headers
  | Map<string, string>
  | Array<[string, string]>

/** Background mode: signals queued in memory and delivered by a task. Each method returns at once. */
export declare class Background {
  private constructor()
  /** Queues a receipt; `false` if it was dropped (and reported to `onDrop`). */
  receipt(options: ReceiptOptions): boolean
  /** Queues a `success` result; `false` if it was dropped. */
  success(options: SignalResultOptions): boolean
  /** Queues a `failure` result; `false` if it was dropped. */
  failure(options: SignalResultOptions): boolean
  /** Queues a result whose `status` is in the options. */
  result(options: SignalResultOptions & { status: 'success' | 'failure' }): boolean
  /** Queues a receipt filled from a verified event; `false` if it was dropped. */
  receiptFor(event: ReceiptSource, options?: ReceiptForOptions): boolean
  /** Queues a `success` for a verified event or repair callback. */
  successFor(target: EventTargetLike, options?: ResultForOptions): boolean
  /** Queues a `failure` for a verified event or repair callback. */
  failureFor(target: EventTargetLike, error: unknown, options?: ResultForOptions): boolean
  /** The counters so far. */
  stats(): BackgroundStats
  /** Waits until everything queued so far is delivered or dropped (default at most 30 s); `true` if drained. */
  flush(timeoutMs?: number): Promise<boolean>
  /** Closes the queue, delivers what is queued (default at most 10 s), reports the rest; the final counters. */
  shutdown(timeoutMs?: number): Promise<BackgroundStats>
}

/**
 * The SendPromptly client. Every method returns a Promise; network waits
 * happen off the JavaScript thread, under the retry policy and time budget
 * (default: at most 3 attempts within 3 s).
 */
export declare class SendPromptly {
  /** Builds a client (no network call); throws `ConfigurationError` on a bad key, URL or setting. */
  constructor(options?: ClientOptions)
  /** The base URL calls go to. */
  readonly baseUrl: string
  /** Records a receipt: the app durably accepted this event. */
  receipt(options: ReceiptOptions): Promise<SignalResponse>
  /** Records a `success` result. */
  success(options: SignalResultOptions): Promise<SignalResponse>
  /** Records a `failure` result. */
  failure(options: SignalResultOptions): Promise<SignalResponse>
  /** Records a result whose `status` is in the options. */
  result(options: SignalResultOptions & { status: 'success' | 'failure' }): Promise<SignalResponse>
  /** A receipt filled from a verified Stripe event or Shopify delivery: provider, id, type, subject, time, object metadata. */
  receiptFor(event: ReceiptSource, options?: ReceiptForOptions): Promise<SignalResponse>
  /** A `success` for a verified event or a repair callback (which also sets `reprocessId`). */
  successFor(target: EventTargetLike, options?: ResultForOptions): Promise<SignalResponse>
  /** A `failure` for a verified event or a repair callback; `error` says why. */
  failureFor(target: EventTargetLike, error: unknown, options?: ResultForOptions): Promise<SignalResponse>
  /**
   * Runs `fn` now and reports how it ends: `success` when it resolves, `failure` (the error's type and message)
   * when it rejects, rethrowing the app's error unchanged. Never throws its own errors (they are logged); waits
   * at most the client's time budget for the result to be recorded.
   */
  track<T>(ref: EventTargetLike, fn: () => T | Promise<T>, options?: TrackOptions): Promise<T>
  /** Wraps `fn`: each call is tracked, the event reference being its first argument (or `options.event(...args)`). */
  track<A extends unknown[], T>(fn: (...args: A) => T | Promise<T>, options?: TrackOptions<A>): (...args: A) => Promise<T>
  /** Where integrations and `track` log what they could not send. */
  logger: Logger
  /** One event with its timeline and incident. */
  getEvent(provider: Provider, eventId: string): Promise<EventDetail>
  /** Searches events (e.g. by customer). */
  searchEvents(filter?: EventFilterOptions): Promise<Page<EventView>>
  /** Lists incidents, newest first. */
  listIncidents(filter?: IncidentFilterOptions): Promise<Page<IncidentView>>
  /** One incident, its event and full timeline. */
  getIncident(incidentId: string): Promise<IncidentDetail>
  /** Asks SendPromptly to send a repair callback for the incident. */
  reprocess(incidentId: string, options?: { note?: string }): Promise<{ reprocess_id: string; incident: IncidentView }>
  /** Resolves an incident by hand. */
  resolve(incidentId: string, options: { note: string }): Promise<{ incident: IncidentView }>
  /** Creates a read-only, expiring proof link (default 7 days). */
  createProofLink(incidentId: string, options?: { expiresInSeconds?: number }): Promise<ProofLinkCreated>
  /** The proof links of an incident. */
  listProofLinks(incidentId: string): Promise<ProofLinkView[]>
  /** Revokes a proof link at once. */
  revokeProofLink(proofLinkId: string): Promise<void>
  /** Plans a bulk reprocess without sending anything (a dry run). */
  planReprocessBatch(options: ReprocessBatchOptions): Promise<ReprocessBatchPlan>
  /** Starts a bulk reprocess (202), paced by the server at `ratePerSecond` with at most `concurrency` callbacks in flight. */
  startReprocessBatch(options: ReprocessBatchOptions): Promise<ReprocessBatchView>
  /** A batch's progress and first items. */
  reprocessBatch(batchId: string): Promise<ReprocessBatchView>
  /** Cancels a batch: incidents not sent yet are never sent; callbacks already sent finish. */
  cancelReprocessBatch(batchId: string): Promise<ReprocessBatchView>
  /** The project's settings. */
  project(): Promise<ProjectView>
  /** Changes project settings. */
  updateProject(update: ProjectUpdate): Promise<ProjectView>
  /** Rotates the signing secret; the new one is returned once, the old one signs for 24 h more. */
  rotateSigningSecret(): Promise<{ secret: string; created_at: string; previous_secrets_expire_at: string }>
  /** `GET /healthz`. */
  health(): Promise<{ status: string; version: string }>
  /** Starts background mode (one per process; call `shutdown()` before exit). */
  background(options?: BackgroundOptions): Background
}
export default SendPromptly

/**
 * Verifies a repair callback (Standard Webhooks, ±5 minutes) with the
 * project's `whsec_` secret (or several, during a rotation) and returns its
 * body. Throws a `SignatureVerificationError` subclass naming the cause.
 */
export declare function verifyRepairRequest(body: RawBody, headers: HeadersLike, secret: string | string[]): RepairCallback

/** Stripe webhook verification. */
export declare const stripe: {
  /**
   * Verifies the `Stripe-Signature` header over the raw payload with the
   * endpoint secret (tolerance 300 s by default) and returns the event.
   */
  verify(payload: RawBody, signatureHeader: string | string[] | undefined, secret: string, options?: { tolerance?: number }): StripeEvent
}

/** Shopify webhook verification. */
export declare const shopify: {
  /** Verifies `X-Shopify-Hmac-Sha256` with the app secret (or several) and returns the delivery. */
  verify(body: RawBody, headers: HeadersLike, secret: string | string[]): ShopifyDelivery
}

/** The facts an error carries. */
export declare class SendPromptlyError extends Error {
  /** Machine-readable type, e.g. `validation_error`, `timeout`, `bad_signature`. */
  readonly type: string
  /** HTTP status when the server answered. */
  readonly status: number | undefined
  /** The offending field, when one is to blame. */
  readonly param: string | undefined
  /** The server's `Request-Id` (quote it to support). */
  readonly requestId: string | undefined
  /** Attempts made (0 when nothing was sent). */
  readonly attempts: number
  /** Whether the failure was of a retryable kind (connection, timeout, 429, 5xx). */
  readonly retryable: boolean
}
/** The server answered with an error status. */
export declare class APIError extends SendPromptlyError {
  /** The server's own message. */
  readonly detail: string | undefined
  /** Milliseconds the server asked to wait (`Retry-After`). */
  readonly retryAfterMs: number | undefined
}
/** 401: the API key is missing or unknown. */
export declare class AuthenticationError extends APIError {}
/** 404: no such object in this project. */
export declare class NotFoundError extends APIError {}
/** 409: a conflict, e.g. a repair callback still being delivered. */
export declare class ConflictError extends APIError {}
/** 400, 413, 415, 422: the server refused the request as sent. */
export declare class InvalidRequestError extends APIError {}
/** 429 after the retries the policy allowed. */
export declare class RateLimitError extends APIError {}
/** 5xx after the retries the policy allowed. */
export declare class ServerError extends APIError {}
/** No usable answer: the connection failed or was closed. */
export declare class ConnectionError extends SendPromptlyError {
  /** `connect`, `connection_closed`, `timeout` or `other`. */
  readonly reason: string
  /** The URL called. */
  readonly url: string | undefined
  /** How long the call took, in milliseconds. */
  readonly elapsedMs: number | undefined
  /** Whether the call's total time budget ran out. */
  readonly budgetExhausted: boolean
}
/** An attempt, or the call's time budget, ran out of time. */
export declare class TimeoutError extends ConnectionError {}
/** Rejected before sending: a field breaks the contract's limits (`param` names it). */
export declare class ValidationError extends SendPromptlyError {}
/** The client is misconfigured (no API key, bad URL, bad setting). */
export declare class ConfigurationError extends SendPromptlyError {}
/** A success answer that could not be read. */
export declare class DecodeError extends SendPromptlyError {}
/** A webhook or repair callback failed verification. */
export declare class SignatureVerificationError extends SendPromptlyError {
  /** `stripe`, `shopify` or `sendpromptly` (repair callbacks). */
  readonly provider: 'stripe' | 'shopify' | 'sendpromptly' | undefined
  /** `bad_signature`, `stale_timestamp`, `malformed` or `configuration`. */
  readonly category: 'bad_signature' | 'stale_timestamp' | 'malformed' | 'configuration'
  /** The precise cause, e.g. `no_matching_signature`, `timestamp_too_old`, `parsed_body`. */
  readonly code: string
}
/** No signature matches the body and secret(s). */
export declare class InvalidSignatureError extends SignatureVerificationError {}
/** The signed timestamp is outside the tolerance (a replay or clock skew). */
export declare class StaleTimestampError extends SignatureVerificationError {}
/** Headers missing or unparseable, or the body is not what was expected. */
export declare class MalformedWebhookError extends SignatureVerificationError {}
/** A parsed object was passed where the raw request body is needed. */
export declare class RawBodyError extends MalformedWebhookError {}
/** The verifier has no usable secret. */
export declare class WebhookSecretError extends SignatureVerificationError {}
