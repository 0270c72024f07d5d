import { Context, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { type StorageOutage, storageOutage } from "../platform/StorageOutage.ts"

/** A subscription invoice's state as a provider reports it. Amounts in cents. */
export interface PaymentState {
  readonly provider: string
  readonly providerInvoiceId: string
  readonly providerSubscriptionId: string
  readonly userId: number | null
  /** initial, renewal */
  readonly billingReason: string | null
  /** paid, failed, refunded */
  readonly status: "paid" | "failed" | "refunded"
  readonly currency: string
  readonly subtotalCents: number
  readonly taxCents: number
  readonly totalCents: number
  /** The provider's `updated_at`: an older state is not applied. */
  readonly providerUpdatedAt: Date
}

/** Subscription payments (invoices), for revenue and the audit trail. */
export class Payments extends Context.Service<Payments, {
  /**
   * Stores the payment's state unless a newer one is stored (in the caller's transaction).
   * Returns the status it had before (undefined: new), or None-like `applied: false` when older.
   */
  readonly record: (payment: PaymentState) => Effect.Effect<{ readonly applied: boolean; readonly before: string | undefined }, StorageOutage>
}>()("bot/Payments") {
  static readonly layer = Layer.effect(
    Payments,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      return Payments.of({
        record: Effect.fn("Payments.record")(function*(p: PaymentState) {
          const rows = yield* sql<{ before: string | null; applied: boolean }>`
            with prior as (
              select status from payments where provider = ${p.provider} and provider_invoice_id = ${p.providerInvoiceId} for update
            ),
            stored as (
              insert into payments (provider, provider_invoice_id, provider_subscription_id, user_id, billing_reason, status,
                currency, subtotal_cents, tax_cents, total_cents, updated_at)
              values (${p.provider}, ${p.providerInvoiceId}, ${p.providerSubscriptionId}, ${p.userId}, ${p.billingReason},
                ${p.status}, ${p.currency}, ${p.subtotalCents}, ${p.taxCents}, ${p.totalCents}, ${p.providerUpdatedAt})
              on conflict (provider, provider_invoice_id) do update set status = excluded.status,
                user_id = coalesce(excluded.user_id, payments.user_id), updated_at = excluded.updated_at
              where excluded.updated_at >= payments.updated_at
              returning id
            )
            select (select status from prior) as before, exists (select 1 from stored) as applied`.pipe(
            Effect.mapError(storageOutage)
          )
          return { applied: rows[0]!.applied, before: rows[0]!.before ?? undefined }
        })
      })
    })
  )
}
