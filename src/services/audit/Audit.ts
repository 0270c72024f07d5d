import { Context, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { storableJson } from "../platform/Storable.ts"
import { type StorageOutage, storageOutage } from "../platform/StorageOutage.ts"

/** One security- or money-relevant action, as the audit log keeps it. */
export interface AuditEntry {
  /** Who did it: "lemonsqueezy", "reconciler", "admin:<id>", "user:<id>". */
  readonly actor: string
  /** What, as a dotted noun.verb: "subscription.status_changed", "payment.refunded". */
  readonly action: string
  readonly subjectUserId: number | null
  readonly details: Readonly<Record<string, unknown>>
}

/** The append-only audit log (`audit_logs`): every billing state change, later every admin and GDPR action. */
export class Audit extends Context.Service<Audit, {
  /** Appends the entry, in the caller's transaction if there is one. */
  readonly record: (entry: AuditEntry) => Effect.Effect<void, StorageOutage>
}>()("bot/Audit") {
  static readonly layer = Layer.effect(
    Audit,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      return Audit.of({
        record: Effect.fn("Audit.record")(function*(entry: AuditEntry) {
          yield* sql`
            insert into audit_logs (actor, action, subject_user_id, details)
            values (${entry.actor}, ${entry.action}, ${entry.subjectUserId}, ${JSON.stringify(storableJson(entry.details))}::jsonb)`.pipe(
            Effect.mapError(storageOutage)
          )
        })
      })
    })
  )
}
