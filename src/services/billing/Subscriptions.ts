import { Clock, Context, Effect, Layer, Metric, Option } from "effect"
import { SqlClient } from "effect/sql"
import { activeSubscriptions, monthlyRecurringRevenue } from "../platform/Metrics.ts"
import { inTransaction, type StorageOutage, storageOutage } from "../platform/StorageOutage.ts"
import { isEntitled, type Plan, type SubscriptionStatus } from "./Entitlement.ts"

/** A subscription's state as a provider reports it (a webhook event or an API answer). */
export interface SubscriptionState {
  readonly provider: string
  readonly providerSubscriptionId: string
  readonly userId: number
  readonly plan: Exclude<Plan, "free">
  readonly status: SubscriptionStatus
  readonly variantId: string
  readonly customerId: string
  readonly renewsAt: Date | null
  readonly endsAt: Date | null
  readonly customerPortalUrl: string | null
  readonly updatePaymentUrl: string | null
  /** The provider's `updated_at`: a state older than the stored one is not applied. */
  readonly providerUpdatedAt: Date
}

/** The part of a subscription's stored state that changes tell or audit. */
export interface Stored {
  readonly status: SubscriptionStatus
  readonly plan: Exclude<Plan, "free">
  readonly renewsAt: Date | null
  readonly endsAt: Date | null
}

/** What applying a state did: whether it was newer than what we had, and what we had. */
export interface Applied {
  readonly applied: boolean
  readonly before: Option.Option<Stored>
}

/** A user's subscription as /account shows it. */
export interface HeldSubscription {
  readonly provider: string
  readonly providerSubscriptionId: string
  readonly plan: Exclude<Plan, "free">
  readonly status: SubscriptionStatus
  readonly renewsAt: Date | null
  readonly endsAt: Date | null
  readonly updatePaymentUrl: string | null
}

/** A user's plan now, and the subscription it comes from (or their latest one). */
export interface Entitlement {
  readonly plan: Plan
  readonly subscription: Option.Option<HeldSubscription>
}

interface Row {
  provider: string
  provider_subscription_id: string
  plan_id: Exclude<Plan, "free">
  status: SubscriptionStatus
  renews_at: Date | null
  ends_at: Date | null
  update_payment_url: string | null
}

const held = (row: Row): HeldSubscription => ({
  provider: row.provider,
  providerSubscriptionId: row.provider_subscription_id,
  plan: row.plan_id,
  status: row.status,
  renewsAt: row.renews_at,
  endsAt: row.ends_at,
  updatePaymentUrl: row.update_payment_url
})

/** Users' subscriptions, from any provider, and the entitlement they give. */
export class Subscriptions extends Context.Service<Subscriptions, {
  /** The user's plan now (an entitled subscription's, else free) and that or their latest subscription. */
  readonly entitlement: (userId: number) => Effect.Effect<Entitlement, StorageOutage>
  /**
   * Stores the state unless a newer one is stored already (its own transaction, or the caller's);
   * between a creation and an update of the same second, the update wins.
   */
  readonly apply: (state: SubscriptionState, kind: "creation" | "update") => Effect.Effect<Applied, StorageOutage>
  /** The user holding a provider's subscription, if we know it. */
  readonly holderOf: (provider: string, providerSubscriptionId: string) => Effect.Effect<Option.Option<number>, StorageOutage>
  /** Subscriptions not expired yet, which a provider may have changed without telling us. */
  readonly unsettled: Effect.Effect<ReadonlyArray<{ readonly provider: string; readonly id: string; readonly userId: number }>, StorageOutage>
  /** The ids of every subscription of the provider we know, expired ones included. */
  readonly known: (provider: string) => Effect.Effect<ReadonlyArray<string>, StorageOutage>
  /** Sets the gauges of active subscriptions by plan and of monthly recurring revenue (cents). */
  readonly measure: Effect.Effect<void, StorageOutage>
}>()("bot/Subscriptions") {
  static readonly layer = Layer.effect(
    Subscriptions,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const transaction = inTransaction(sql)
      const reportedCurrencies = new Set<string>()

      return Subscriptions.of({
        entitlement: Effect.fn("Subscriptions.entitlement")(function*(userId: number) {
          const rows = yield* sql<Row>`
            select provider, provider_subscription_id, plan_id, status, renews_at, ends_at, update_payment_url
            from subscriptions where user_id = ${userId} order by provider_updated_at desc`.pipe(Effect.mapError(storageOutage))
          const now = new Date(yield* Clock.currentTimeMillis)
          const entitled = rows.find((row) => isEntitled(row.status, row.ends_at, now))
          const shown = entitled ?? rows[0]
          return { plan: entitled?.plan_id ?? "free", subscription: Option.map(Option.fromNullishOr(shown), held) }
        }),
        apply: Effect.fn("Subscriptions.apply")(function*(state: SubscriptionState, kind: "creation" | "update") {
          return yield* transaction(Effect.gen(function*() {
            // One event of a subscription at a time: two new to us at once would both see no row.
            yield* sql`select pg_advisory_xact_lock(hashtextextended(${`${state.provider}:${state.providerSubscriptionId}`}, 0))`
            const [prior] = yield* sql<{ status: SubscriptionStatus; plan_id: Exclude<Plan, "free">; renews_at: Date | null; ends_at: Date | null }>`
              select status, plan_id, renews_at, ends_at from subscriptions
              where provider = ${state.provider} and provider_subscription_id = ${state.providerSubscriptionId}
              for update`
            // A creation and an update of the same second: the update is the later state.
            const stored = yield* sql`
              insert into subscriptions (user_id, plan_id, provider, provider_subscription_id, provider_customer_id,
                variant_id, status, renews_at, ends_at, customer_portal_url, update_payment_url, provider_updated_at)
              values (${state.userId}, ${state.plan}, ${state.provider}, ${state.providerSubscriptionId}, ${state.customerId},
                ${state.variantId}, ${state.status}, ${state.renewsAt}, ${state.endsAt}, ${state.customerPortalUrl},
                ${state.updatePaymentUrl}, ${state.providerUpdatedAt})
              on conflict (provider, provider_subscription_id) do update set
                plan_id = excluded.plan_id, provider_customer_id = excluded.provider_customer_id,
                variant_id = excluded.variant_id, status = excluded.status, renews_at = excluded.renews_at,
                ends_at = excluded.ends_at,
                customer_portal_url = coalesce(excluded.customer_portal_url, subscriptions.customer_portal_url),
                update_payment_url = coalesce(excluded.update_payment_url, subscriptions.update_payment_url),
                provider_updated_at = excluded.provider_updated_at, updated_at = now()
              where excluded.provider_updated_at > subscriptions.provider_updated_at
                or (excluded.provider_updated_at = subscriptions.provider_updated_at and ${kind === "update"})
              returning id`
            return {
              applied: stored.length > 0,
              before: Option.map(Option.fromNullishOr(prior), (row): Stored => ({
                status: row.status,
                plan: row.plan_id,
                renewsAt: row.renews_at,
                endsAt: row.ends_at
              }))
            }
          }))
        }),
        holderOf: Effect.fn("Subscriptions.holderOf")(function*(provider: string, providerSubscriptionId: string) {
          const rows = yield* sql<{ user_id: bigint }>`
            select user_id from subscriptions
            where provider = ${provider} and provider_subscription_id = ${providerSubscriptionId}`.pipe(
            Effect.mapError(storageOutage)
          )
          return Option.map(Option.fromNullishOr(rows[0]), (row) => Number(row.user_id))
        }),
        unsettled: sql<{ provider: string; provider_subscription_id: string; user_id: bigint }>`
          select provider, provider_subscription_id, user_id from subscriptions where status <> 'expired'`.pipe(
          Effect.map((rows) => rows.map((row) => ({ provider: row.provider, id: row.provider_subscription_id, userId: Number(row.user_id) }))),
          Effect.mapError(storageOutage),
          Effect.withSpan("Subscriptions.unsettled")
        ),
        known: Effect.fn("Subscriptions.known")(function*(provider: string) {
          const rows = yield* sql<{ id: string }>`
            select provider_subscription_id as id from subscriptions where provider = ${provider}`.pipe(Effect.mapError(storageOutage))
          return rows.map((row) => row.id)
        }),
        measure: Effect.gen(function*() {
          const plans = yield* sql<{ plan_id: string; active: bigint }>`
            select p.id as plan_id, count(s.id) as active from plans p
            left join subscriptions s on s.plan_id = p.id and s.status in ('active', 'past_due', 'on_trial')
            group by p.id`.pipe(Effect.mapError(storageOutage))
          for (const row of plans) {
            yield* Metric.update(Metric.withAttributes(activeSubscriptions, { plan: row.plan_id }), Number(row.active))
          }
          // MRR: what each renewing subscription last paid (subtotal, before tax), by currency.
          const revenue = yield* sql<{ currency: string; cents: bigint }>`
            select last.currency, sum(last.subtotal_cents) as cents from subscriptions s
            cross join lateral (
              select currency, subtotal_cents from payments p
              where p.provider = s.provider and p.provider_subscription_id = s.provider_subscription_id and p.status = 'paid'
              order by p.updated_at desc limit 1
            ) last
            where s.status in ('active', 'past_due')
            group by last.currency`.pipe(Effect.mapError(storageOutage))
          // A currency no subscription pays in any more goes back to 0 rather than keep its last value.
          const now = new Map(revenue.map((row) => [row.currency, Number(row.cents)]))
          for (const currency of reportedCurrencies) if (!now.has(currency)) now.set(currency, 0)
          for (const [currency, cents] of now) {
            reportedCurrencies.add(currency)
            yield* Metric.update(Metric.withAttributes(monthlyRecurringRevenue, { currency }), cents)
          }
        }).pipe(Effect.withSpan("Subscriptions.measure"))
      })
    })
  )
}
