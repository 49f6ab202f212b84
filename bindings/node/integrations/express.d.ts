import type SendPromptly from '../index'
import type { StripeEvent, ShopifyDelivery, SignalResponse, StripeWebhookOptions, ShopifyWebhookOptions, RepairOptions } from './common'

export type { StripeWebhookOptions, ShopifyWebhookOptions, RepairOptions }

/** The request as the middleware leaves it for the next handler. */
export interface WebhookRequest {
  headers: Record<string, string | string[] | undefined>
  body?: unknown
  /** Set by `stripeWebhook`. */
  stripeEvent?: StripeEvent
  /** Set by `shopifyWebhook`. */
  shopifyDelivery?: ShopifyDelivery
  /** The receipt's answer (`null` when not sent, queued or not recorded). */
  sendpromptlyReceipt?: SignalResponse | null
}
/** An Express middleware / handler. */
export type Middleware = (req: any, res: any, next: (err?: unknown) => void) => Promise<void>

/** Verifies a Stripe webhook (400 when the signature does not match), sends its receipt, sets `req.stripeEvent`. */
export declare function stripeWebhook(sp: SendPromptly, options?: StripeWebhookOptions): Middleware
/** Verifies a Shopify webhook (400 when the HMAC does not match), sends its receipt, sets `req.shopifyDelivery`. */
export declare function shopifyWebhook(sp: SendPromptly, options?: ShopifyWebhookOptions): Middleware
/** The repair endpoint: verifies the callback (400 when forged), calls `fulfil`, reports with the `reprocess_id`; 200 `{ repaired }` once recorded, 503 when not (SendPromptly calls again). */
export declare function repairEndpoint(sp: SendPromptly, options: RepairOptions): Middleware

// What the middleware adds to Express's `Request` (merged with @types/express when installed).
declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** The verified Stripe event (set by `stripeWebhook`). */
      stripeEvent?: StripeEvent
      /** The verified Shopify delivery (set by `shopifyWebhook`). */
      shopifyDelivery?: ShopifyDelivery
      /** The receipt's answer (`null` when not sent, queued or not recorded). */
      sendpromptlyReceipt?: SignalResponse | null
    }
  }
}
