import { createHash } from "node:crypto"
import { Clock, Context, Effect, Layer, Metric, Option, Schema } from "effect"
import { SqlClient } from "effect/sql"
import {
  decodeInvoice,
  decodeOrder,
  decodeSubscription,
  decodeWebhookEvent,
  type SubscriptionAttributes,
  type WebhookEvent
} from "../../schema/billing/LemonSqueezy.ts"
import { Audit } from "../audit/Audit.ts"
import { Notices } from "../chat/Notices.ts"
import { AppConfig } from "../platform/AppConfig.ts"
import { eventsFlagged, paymentAmount, payments, refunds, subscriptionChanges, subscriptionsCreated } from "../platform/Metrics.ts"
import { storable, storableJson, storableOrNull } from "../platform/Storable.ts"
import { inTransaction, type StorageOutage, storageOutage } from "../platform/StorageOutage.ts"
import { Payments } from "./Payments.ts"
import { PromoSeats } from "./PromoSeats.ts"
import { SubscriptionNotices } from "./SubscriptionNotices.ts"
import { type Stored, type SubscriptionState, Subscriptions } from "./Subscriptions.ts"

/** A verified body that is not a LemonSqueezy event (not JSON, or no meta / data): 400. */
export class InvalidEvent extends Schema.TaggedError<InvalidEvent>()("InvalidEvent", { message: Schema.String }) {}

/**
 * applied: state changed; duplicate: stored before; flagged: stored, not applied (no user we
 * know, a payload we cannot read), for the operator; stored: kept, nothing to apply.
 */
export type Reception = "applied" | "duplicate" | "flagged" | "stored"

const provider = "lemonsqueezy"

/** What applying an event did, to report after the transaction commits. */
interface Effects {
  readonly reception: Exclude<Reception, "duplicate">
  readonly chats: ReadonlyArray<number>
  readonly metrics: ReadonlyArray<Effect.Effect<void>>
  readonly note?: string
}

const none: Pick<Effects, "chats" | "metrics"> = { chats: [], metrics: [] }
const stored = (): Effects => ({ reception: "stored", ...none })
const flagged = (note: string): Effects => ({ reception: "flagged", ...none, note })

const idOf = (value: number | string) => String(value)
const dateOf = (value: string | null | undefined) => (value ? new Date(value) : null)
const sameTime = (a: Date | null, b: Date | null) => (a?.getTime() ?? null) === (b?.getTime() ?? null)
const changedFields = (before: Stored, after: SubscriptionState) =>
  [
    before.status !== after.status ? "status" : undefined,
    before.plan !== after.plan ? "plan" : undefined,
    sameTime(before.renewsAt, after.renewsAt) ? undefined : "renews_at",
    sameTime(before.endsAt, after.endsAt) ? undefined : "ends_at"
  ].filter((field) => field !== undefined)
const running = (status: string) => status === "active" || status === "on_trial"

/**
 * LemonSqueezy's webhook events, applied exactly once and in order: each verified body is stored
 * once (a replay is a no-op), and applied in the same transaction (subscription state, payments,
 * promo seats, notices to the user, audit rows). An older event never overwrites newer state.
 */
export class LemonEvents extends Context.Service<LemonEvents, {
  /**
   * Stores and applies a verified webhook body (raw JSON text). Fails with InvalidEvent when it
   * is not an event, StorageOutage when Postgres is away (LemonSqueezy delivers it again).
   */
  readonly receive: (body: string) => Effect.Effect<Reception, InvalidEvent | StorageOutage>
  /**
   * Applies a subscription's state as the API reports it (the reconciler), like an event would.
   * Returns the status before and after when it repaired something.
   */
  readonly reconcile: (
    id: string,
    userId: number,
    attributes: SubscriptionAttributes
  ) => Effect.Effect<Option.Option<{ readonly before: string; readonly after: string }>, StorageOutage>
}>()("bot/LemonEvents") {
  static readonly layer = Layer.effect(
    LemonEvents,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const transaction = inTransaction(sql)
      const config = yield* AppConfig
      const subscriptions = yield* Subscriptions
      const paymentsStore = yield* Payments
      const seats = yield* PromoSeats
      const notices = yield* Notices
      const audit = yield* Audit
      const told = yield* SubscriptionNotices
      const variants = Option.map(config.lemonSqueezy, (lemon) => lemon.variants)
      const isPlanVariant = (variantId: string) =>
        Option.exists(variants, (v) => v.promo === variantId || v.standard === variantId)

      const knownUser = (value: unknown) =>
        Effect.gen(function*() {
          const id = typeof value === "string" && /^\d{1,19}$/.test(value) ? Number(value) : undefined
          if (id === undefined) return Option.none<number>()
          const rows = yield* sql`select 1 from users where id = ${id}`.pipe(Effect.mapError(storageOutage))
          return rows.length > 0 ? Option.some(id) : Option.none<number>()
        })

      /** The user an event is for: the checkout's telegram_user_id, else the subscription's holder. */
      const userOf = (event: WebhookEvent, subscriptionId: string | undefined) =>
        knownUser(event.meta.custom_data?.["telegram_user_id"]).pipe(
          Effect.flatMap((user) =>
            Option.isSome(user) || subscriptionId === undefined ? Effect.succeed(user) : subscriptions.holderOf(provider, subscriptionId)
          )
        )

      const planOf = (variantId: string) =>
        Option.match(variants, { onNone: () => "standard" as const, onSome: (v) => (v.promo === variantId ? "promo" as const : "standard" as const) })

      /** Stores a subscription's state; holds its promo seat, tells and audits what changed. */
      const applySubscription = (id: string, userId: number, a: SubscriptionAttributes, actor: string, kind: "creation" | "update") =>
        Effect.gen(function*() {
          const state: SubscriptionState = {
            provider,
            providerSubscriptionId: id,
            userId,
            plan: planOf(idOf(a.variant_id)),
            status: a.status,
            variantId: idOf(a.variant_id),
            customerId: idOf(a.customer_id),
            renewsAt: dateOf(a.renews_at),
            endsAt: dateOf(a.ends_at),
            customerPortalUrl: a.urls?.customer_portal ?? null,
            updatePaymentUrl: a.urls?.update_payment_method ?? null,
            providerUpdatedAt: new Date(a.updated_at)
          }
          const result = yield* subscriptions.apply(state, kind)
          const before = Option.getOrUndefined(result.before)
          const fields = before === undefined ? ["status"] : changedFields(before, state)
          if (!result.applied || fields.length === 0) return { changed: false, before, ...none }
          yield* audit.record({
            actor,
            action: before === undefined
              ? "subscription.created"
              : fields.includes("status")
              ? "subscription.status_changed"
              : "subscription.updated",
            subjectUserId: userId,
            details: { provider, subscription: id, changed: fields, from: before?.status ?? null, to: state.status, plan: state.plan }
          })
          if (state.plan === "promo" && running(state.status) && !(before?.plan === "promo" && running(before.status))) {
            const holding = yield* seats.hold(userId, new Date(yield* Clock.currentTimeMillis))
            if (holding === "oversold") {
              yield* audit.record({ actor, action: "promo.oversold", subjectUserId: userId, details: { provider, subscription: id } })
              yield* Effect.logWarning("a promo subscription started with no promo seat left (PROMO_SEATS)").pipe(
                Effect.annotateLogs({ subscription: id })
              )
            }
          }
          const notice = yield* told.notice(state, before?.status)
          const metrics = [
            ...(before === undefined ? [Metric.update(Metric.withAttributes(subscriptionsCreated, { plan: state.plan }), 1)] : []),
            ...(Option.isSome(notice) ? [Metric.update(Metric.withAttributes(subscriptionChanges, { kind: notice.value.kind }), 1)] : [])
          ]
          const chats = Option.isSome(notice) ? Option.toArray(notice.value.chat) : []
          return { changed: fields.includes("status"), before, chats, metrics }
        })

      const onSubscription = (event: WebhookEvent) =>
        Effect.gen(function*() {
          const attributes = yield* decodeSubscription(event.data.attributes).pipe(Effect.option)
          if (Option.isNone(attributes)) return flagged(`subscription ${event.data.id}: attributes we cannot read`)
          const user = yield* userOf(event, event.data.id)
          if (Option.isNone(user)) return flagged(`no telegram_user_id we know, and subscription ${event.data.id} is new to us`)
          const kind = event.meta.event_name === "subscription_created" ? "creation" : "update"
          const { chats, metrics } = yield* applySubscription(event.data.id, user.value, attributes.value, provider, kind)
          return { reception: "applied" as const, chats, metrics }
        })

      const paymentOutcome = (eventName: string) =>
        eventName === "subscription_payment_failed" ? "failed" as const
        : eventName === "subscription_payment_refunded" ? "refunded" as const
        : "paid" as const

      const onInvoice = (event: WebhookEvent) =>
        Effect.gen(function*() {
          const invoice = yield* decodeInvoice(event.data.attributes).pipe(Effect.option)
          if (Option.isNone(invoice)) return flagged(`invoice ${event.data.id}: attributes we cannot read`)
          const a = invoice.value
          const subscriptionId = idOf(a.subscription_id)
          const user = yield* userOf(event, subscriptionId)
          const status = paymentOutcome(event.meta.event_name)
          const refundedCents = status === "refunded" ? a.refunded_amount || a.total : 0
          const recorded = yield* paymentsStore.record({
            provider,
            providerInvoiceId: event.data.id,
            providerSubscriptionId: subscriptionId,
            userId: Option.getOrNull(user),
            billingReason: a.billing_reason ?? null,
            status,
            currency: a.currency,
            subtotalCents: a.subtotal,
            taxCents: a.tax,
            totalCents: a.total,
            refundedCents,
            providerUpdatedAt: new Date(a.updated_at)
          })
          const unchanged = recorded.before?.status === status && recorded.before.refundedCents === refundedCents
          if (!recorded.applied || unchanged) return stored()
          const amount = status === "refunded" ? refundedCents : a.total
          const metrics = [
            Metric.update(Metric.withAttributes(payments, { outcome: status }), 1),
            Metric.update(Metric.withAttributes(paymentAmount, { outcome: status, currency: a.currency }), amount),
            ...(status === "refunded" ? [Metric.update(refunds, 1)] : [])
          ]
          if (Option.isNone(user)) return { ...flagged(`payment ${event.data.id} of subscription ${subscriptionId}: no user`), metrics }
          yield* audit.record({
            actor: provider,
            action: `payment.${status}`,
            subjectUserId: user.value,
            details: { provider, invoice: event.data.id, subscription: subscriptionId, amount_cents: amount, currency: a.currency }
          })
          if (status !== "refunded") return { reception: "applied" as const, chats: [], metrics }
          // Keyed by the amount: a second partial refund is told too, a replay is not.
          const chat = yield* told.refund(user.value, `invoice:${event.data.id}:${refundedCents}`, refundedCents, a.currency)
          return { reception: "applied" as const, chats: Option.toArray(chat), metrics }
        })

      const onOrder = (event: WebhookEvent) =>
        Effect.gen(function*() {
          if (event.meta.event_name !== "order_refunded") return stored()
          const order = yield* decodeOrder(event.data.attributes).pipe(Effect.option)
          if (Option.isNone(order)) return flagged(`order ${event.data.id}: attributes we cannot read`)
          const user = yield* userOf(event, undefined)
          if (Option.isNone(user)) return flagged(`refund of order ${event.data.id}: no telegram_user_id we know`)
          const amount = order.value.refunded_amount || order.value.total
          yield* audit.record({
            actor: provider,
            action: "order.refunded",
            subjectUserId: user.value,
            details: { provider, order: event.data.id, refunded_cents: amount, currency: order.value.currency }
          })
          // A plan's order is its subscription's first payment: subscription_payment_refunded tells that one.
          const variant = order.value.first_order_item?.variant_id
          if (variant !== undefined && isPlanVariant(idOf(variant))) return { reception: "applied" as const, ...none }
          const chat = yield* told.refund(user.value, `order:${event.data.id}:${amount}`, amount, order.value.currency)
          return { reception: "applied" as const, chats: Option.toArray(chat), metrics: [Metric.update(refunds, 1)] }
        })

      const apply = (event: WebhookEvent): Effect.Effect<Effects, StorageOutage> => {
        switch (event.data.type) {
          case "subscriptions":
            return onSubscription(event)
          case "subscription-invoices":
            return onInvoice(event)
          case "orders":
            return onOrder(event)
          default:
            return Effect.succeed(stored())
        }
      }

      /** After the commit: wake the chats told something, count what happened. */
      const report = (effects: Pick<Effects, "chats" | "metrics">) =>
        Effect.gen(function*() {
          yield* Effect.all(effects.metrics, { discard: true })
          yield* notices.wake(effects.chats).pipe(
            Effect.catchTag("QueueOutage", (error) => Effect.logWarning("notice wake-up failed; the sweeper will deliver it", error.message))
          )
        })

      return LemonEvents.of({
        receive: Effect.fn("LemonEvents.receive")(function*(body: string) {
          const event = yield* decodeWebhookEvent(body).pipe(
            Effect.mapError((error) => new InvalidEvent({ message: `not a LemonSqueezy event: ${error.message}` }))
          )
          yield* Effect.annotateCurrentSpan({ event: event.meta.event_name, id: event.data.id })
          const dedupeKey = createHash("sha256").update(body).digest("hex")
          const outcome = yield* transaction(Effect.gen(function*() {
            const rows = yield* sql<{ id: string }>`
              insert into lemonsqueezy_events (event_name, dedupe_key, payload, test_mode)
              values (${storable(event.meta.event_name)}, ${dedupeKey}, ${JSON.stringify(storableJson(JSON.parse(body)))}::jsonb,
                ${event.meta.test_mode === true})
              on conflict (dedupe_key) do nothing returning id`.pipe(Effect.mapError(storageOutage))
            const eventRow = rows[0]
            if (eventRow === undefined) return Option.none<Effects>()
            const effects = yield* apply(event)
            yield* sql`
              update lemonsqueezy_events set processed_at = now(), flagged = ${effects.reception === "flagged"},
                note = ${storableOrNull(effects.note)}
              where id = ${eventRow.id}`.pipe(Effect.mapError(storageOutage))
            return Option.some(effects)
          }))
          if (Option.isNone(outcome)) return "duplicate" as const
          yield* report(outcome.value)
          if (outcome.value.reception === "flagged") {
            yield* Metric.update(eventsFlagged, 1)
            yield* Effect.logWarning("LemonSqueezy event kept for the operator, not applied", { note: outcome.value.note ?? "" }).pipe(
              Effect.annotateLogs({ event: event.meta.event_name, id: event.data.id })
            )
          }
          return outcome.value.reception
        }),
        reconcile: Effect.fn("LemonEvents.reconcile")(function*(id: string, userId: number, attributes: SubscriptionAttributes) {
          const { before, changed, chats, metrics } = yield* transaction(applySubscription(id, userId, attributes, "reconciler", "update"))
          yield* report({ chats, metrics })
          return changed ? Option.some({ before: before?.status ?? "none", after: attributes.status }) : Option.none()
        })
      })
    })
  )
}
