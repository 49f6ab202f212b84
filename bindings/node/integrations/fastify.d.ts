import type SendPromptly from '../index'
import type { StripeEvent, ShopifyDelivery, SignalResponse, StripeWebhookOptions, ShopifyWebhookOptions, RepairOptions } from './common'

export type { StripeWebhookOptions, ShopifyWebhookOptions, RepairOptions }

/** A Fastify plugin (pass it to `app.register`). */
export type Plugin = (fastify: any) => Promise<void>
/** The route's handler: Fastify's `request` with the verified event on it. */
export type Handler<R> = (request: R & { sendpromptlyReceipt: SignalResponse | null; [key: string]: any }, reply: any) => unknown

/** Registers `POST path` (default `/webhooks/stripe`) with a raw-body parser: verified (400 otherwise), receipt sent, `request.stripeEvent` set. */
export declare function stripeWebhook(sp: SendPromptly, options: StripeWebhookOptions & { path?: string }, handler: Handler<{ stripeEvent: StripeEvent }>): Plugin
/** Registers `POST path` (default `/webhooks/shopify`): verified (400 otherwise), receipt sent, `request.shopifyDelivery` set. */
export declare function shopifyWebhook(sp: SendPromptly, options: ShopifyWebhookOptions & { path?: string }, handler: Handler<{ shopifyDelivery: ShopifyDelivery }>): Plugin
/** Registers the repair endpoint at `path` (default `/sendpromptly/repair`). */
export declare function repairEndpoint(sp: SendPromptly, options: RepairOptions & { path?: string }): Plugin
