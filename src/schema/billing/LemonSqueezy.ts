import { Schema } from "effect"

/**
 * The parts of LemonSqueezy's webhook payloads and API answers the bot reads
 * (https://docs.lemonsqueezy.com/help/webhooks): `{ meta, data: { type, id, attributes } }`.
 * Ids inside attributes are integers, `data.id` is a string; times are ISO 8601 strings.
 */

/** A subscription's statuses (the bot's own, billing/Entitlement.ts, are the same words). */
export const SubscriptionStatus = Schema.Literals(["on_trial", "active", "paused", "past_due", "unpaid", "cancelled", "expired"])
export type SubscriptionStatus = typeof SubscriptionStatus.Type

const Id = Schema.Union([Schema.Number, Schema.String])
const Time = Schema.NullOr(Schema.String)

/** `data.attributes` of a `subscriptions` resource. */
export const SubscriptionAttributes = Schema.Struct({
  customer_id: Id,
  variant_id: Id,
  status: SubscriptionStatus,
  renews_at: Time,
  ends_at: Time,
  trial_ends_at: Schema.optional(Time),
  updated_at: Schema.String,
  urls: Schema.optional(Schema.Struct({
    update_payment_method: Schema.optional(Time),
    customer_portal: Schema.optional(Time)
  }))
})
export type SubscriptionAttributes = typeof SubscriptionAttributes.Type

/** `data.attributes` of a `subscription-invoices` resource (the subscription_payment_* events). */
export const InvoiceAttributes = Schema.Struct({
  subscription_id: Id,
  billing_reason: Schema.optional(Schema.String),
  currency: Schema.String,
  status: Schema.String,
  subtotal: Schema.Number,
  tax: Schema.Number,
  total: Schema.Number,
  refunded: Schema.optional(Schema.Boolean),
  refunded_amount: Schema.optional(Schema.Number),
  updated_at: Schema.String
})
export type InvoiceAttributes = typeof InvoiceAttributes.Type

/** `data.attributes` of an `orders` resource (order_created, order_refunded). */
export const OrderAttributes = Schema.Struct({
  first_order_item: Schema.optional(Schema.NullOr(Schema.Struct({ variant_id: Id }))),
  currency: Schema.String,
  status: Schema.String,
  refunded: Schema.optional(Schema.Boolean),
  refunded_amount: Schema.optional(Schema.Number),
  total: Schema.Number,
  updated_at: Schema.String
})
export type OrderAttributes = typeof OrderAttributes.Type

/** A webhook's body. `custom_data` is what the checkout was made with (values as strings). */
export const WebhookEvent = Schema.Struct({
  meta: Schema.Struct({
    event_name: Schema.String,
    test_mode: Schema.optional(Schema.Boolean),
    custom_data: Schema.optional(Schema.NullOr(Schema.Record(Schema.String, Schema.Unknown)))
  }),
  data: Schema.Struct({
    type: Schema.String,
    id: Schema.String,
    attributes: Schema.Unknown
  })
})
export type WebhookEvent = typeof WebhookEvent.Type

/** A webhook body (JSON text) -> WebhookEvent; fails with SchemaError. */
export const decodeWebhookEvent = Schema.decodeUnknownEffect(Schema.fromJsonString(WebhookEvent))
export const decodeSubscription = Schema.decodeUnknownEffect(SubscriptionAttributes)
export const decodeInvoice = Schema.decodeUnknownEffect(InvoiceAttributes)
export const decodeOrder = Schema.decodeUnknownEffect(OrderAttributes)

/** A JSON:API resource answer of the API (`GET /v1/subscriptions/:id`, `POST /v1/checkouts`). */
export const ApiResource = Schema.Struct({
  data: Schema.Struct({ type: Schema.String, id: Schema.String, attributes: Schema.Unknown })
})
export const decodeApiResource = Schema.decodeUnknownEffect(ApiResource)

/** A JSON:API list answer (`GET /v1/subscriptions?filter[store_id]=...`), one page of it. */
export const ApiList = Schema.Struct({
  data: Schema.Array(Schema.Struct({ type: Schema.String, id: Schema.String, attributes: Schema.Unknown })),
  meta: Schema.optional(Schema.Struct({ page: Schema.optional(Schema.Struct({ lastPage: Schema.Number })) }))
})
export const decodeApiList = Schema.decodeUnknownEffect(ApiList)

/** `data.attributes` of a `variants` resource: its price (cents) and billing interval. */
export const VariantAttributes = Schema.Struct({ price: Schema.Number, interval: Schema.NullOr(Schema.String) })
export const decodeVariant = Schema.decodeUnknownEffect(VariantAttributes)

/** `data.attributes` of a `stores` resource: the currency its prices are in. */
export const StoreAttributes = Schema.Struct({ currency: Schema.String })
export const decodeStore = Schema.decodeUnknownEffect(StoreAttributes)

/** `data.attributes` of a `checkouts` resource: the URL to send the buyer to. */
export const CheckoutAttributes = Schema.Struct({ url: Schema.String, expires_at: Time })
export const decodeCheckout = Schema.decodeUnknownEffect(CheckoutAttributes)
