import type SendPromptly from '../index'
import type { StripeEvent, ShopifyDelivery, SignalResponse, StripeWebhookOptions, ShopifyWebhookOptions, RepairOptions } from './common'

export type { StripeWebhookOptions, ShopifyWebhookOptions, RepairOptions }

/** An App Router route handler. */
export type RouteHandler = (request: Request, context?: unknown) => Promise<Response>
/** The app's code for a verified event: a `Response`, or anything JSON (default `{ received: true }`). */
export type WebhookHandler<E> = (event: E, request: Request, extra: { receipt: SignalResponse | null; context?: unknown }) => unknown

/** `export const POST = stripeWebhook(sp, {}, async (event) => …)`: verified (400 otherwise), receipt sent, then `handler`. */
export declare function stripeWebhook(sp: SendPromptly, options: StripeWebhookOptions | undefined, handler: WebhookHandler<StripeEvent>): RouteHandler
/** The same for Shopify deliveries. */
export declare function shopifyWebhook(sp: SendPromptly, options: ShopifyWebhookOptions | undefined, handler: WebhookHandler<ShopifyDelivery>): RouteHandler
/** The repair endpoint's route handler: verify (400 when forged), `fulfil`, report with the `reprocess_id`. */
export declare function repairHandler(sp: SendPromptly, options: RepairOptions): RouteHandler
