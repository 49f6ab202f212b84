import type { ReceiptForOptions, StripeEvent, ShopifyDelivery, RepairCallback, SignalResponse, Background } from '../index'

/** Options of every webhook integration. */
export interface WebhookOptions<E> {
  /** The webhook secret; default `STRIPE_WEBHOOK_SECRET` / `SHOPIFY_WEBHOOK_SECRET` (else `SHOPIFY_API_SECRET`). Shopify accepts a list (rotation). */
  secret?: string | string[]
  /** Stripe: the signature's tolerance in seconds (default 300). */
  tolerance?: number
  /** Extra receipt fields (`effect`, `deadlineSeconds`, `metadata`, …), a function of the event returning them, or `false` for no receipt. */
  receipt?: ReceiptForOptions | ((event: E) => ReceiptForOptions | Promise<ReceiptForOptions>) | false
  /** Queue the receipt in this background instead of awaiting it (e.g. Shopify's 5 s limit). */
  background?: Background
}
export type StripeWebhookOptions = WebhookOptions<StripeEvent>
export type ShopifyWebhookOptions = WebhookOptions<ShopifyDelivery>

/** Options of every repair-endpoint integration. */
export interface RepairOptions {
  /** The project's signing secret(s); default `SENDPROMPTLY_SIGNING_SECRET`. */
  secret?: string | string[]
  /** The app's own fulfilment: apply the effect of `event` again (idempotently). Its outcome is reported with the `reprocess_id`. */
  fulfil: (event: RepairCallback['event'], callback: RepairCallback) => unknown | Promise<unknown>
}

export type { StripeEvent, ShopifyDelivery, RepairCallback, SignalResponse }
