import { Context, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { inTransaction, type StorageOutage } from "../platform/StorageOutage.ts"

/** A subscription invoice's state as a provider reports it. Amounts in cents. */
export interface PaymentState {
  readonly provider: string
  readonly providerInvoiceId: string
  readonly providerSubscriptionId: string
  readonly userId: number | null
  /** initial, renewal */
  readonly billingReason: string | null
  readonly status: "paid" | "failed" | "refunded"
  readonly currency: string
  readonly subtotalCents: number
  readonly taxCents: number
  readonly totalCents: number
  /** Refunded so far (a partial refund may be followed by another). */
  readonly refundedCents: number
  /** The provider's `updated_at`: an older state is not applied. */
  readonly providerUpdatedAt: Date
}

/** What recording a payment did: applied or older than what we had, and what we had. */
export interface Recorded {
  readonly applied: boolean
  readonly before: { readonly status: string; readonly refundedCents: number } | undefined
}

/** Subscription payments (invoices), for revenue and the audit trail. */
export class Payments extends Context.Service<Payments, {
  /** Stores the payment's state unless a newer one is stored (its own transaction, or the caller's). */
  readonly record: (payment: PaymentState) => Effect.Effect<Recorded, StorageOutage>
}>()("bot/Payments") {
  static readonly layer = Layer.effect(
    Payments,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const transaction = inTransaction(sql)
      return Payments.of({
        record: Effect.fn("Payments.record")(function*(p: PaymentState) {
          return yield* transaction(Effect.gen(function*() {
            yield* sql`select pg_advisory_xact_lock(hashtextextended(${`${p.provider}:invoice:${p.providerInvoiceId}`}, 0))`
            const [prior] = yield* sql<{ status: string; refunded_cents: number }>`
              select status, refunded_cents from payments
              where provider = ${p.provider} and provider_invoice_id = ${p.providerInvoiceId} for update`
            const stored = yield* sql`
              insert into payments (provider, provider_invoice_id, provider_subscription_id, user_id, billing_reason, status,
                currency, subtotal_cents, tax_cents, total_cents, refunded_cents, updated_at)
              values (${p.provider}, ${p.providerInvoiceId}, ${p.providerSubscriptionId}, ${p.userId}, ${p.billingReason},
                ${p.status}, ${p.currency}, ${p.subtotalCents}, ${p.taxCents}, ${p.totalCents}, ${p.refundedCents},
                ${p.providerUpdatedAt})
              on conflict (provider, provider_invoice_id) do update set status = excluded.status,
                refunded_cents = excluded.refunded_cents, user_id = coalesce(excluded.user_id, payments.user_id),
                updated_at = excluded.updated_at
              where excluded.updated_at >= payments.updated_at
              returning id`
            return {
              applied: stored.length > 0,
              before: prior === undefined ? undefined : { status: prior.status, refundedCents: prior.refunded_cents }
            }
          }))
        })
      })
    })
  )
}
