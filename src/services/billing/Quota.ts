import { Clock, Context, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { AppConfig } from "../platform/AppConfig.ts"
import { type Gate, type Mail, type MailboxError, ownedBy, takenOver } from "../chat/Mailbox.ts"
import { type StorageOutage, storageOutage } from "../platform/StorageOutage.ts"
import { type Plan, quotaDay } from "./Entitlement.ts"

/** The outcome of counting messages against a daily quota. */
export interface QuotaUse {
  /** The quota day counted in (YYYY-MM-DD of BILLING_TIMEZONE). */
  readonly day: string
  readonly allowed: boolean
  /** Messages counted today, these included when allowed. */
  readonly used: number
  /** Today's limit of the plan; 0: unlimited. */
  readonly limit: number
}

/**
 * Daily quotas of user messages (the spec's plans): FREE_DAILY_MESSAGES on the free plan (0:
 * unlimited), PAID_DAILY_MESSAGES (fair use) on a paid one, per day of BILLING_TIMEZONE.
 */
export class Quota extends Context.Service<Quota, {
  /**
   * Counts `messages` user messages against today's quota of `plan`, atomically: concurrent turns
   * cannot pass the limit together. Refused (nothing counted) when they would pass it. The
   * decision is stored with the message `decision.mail` (`allowed` or `refused`) in the same
   * statement: a redo (after a crash, an outage) finds it and is never charged twice. Fails with
   * MailTakenOver, nothing counted, when the message is no longer this turn's (Mailbox's fence).
   */
  readonly consume: (
    userId: number,
    plan: Plan,
    messages: number,
    decision: { readonly mail: Mail; readonly allowed: Gate; readonly refused: Gate }
  ) => Effect.Effect<QuotaUse, MailboxError>
  /** Gives back messages counted on `day` (their turn was refused by a rate limit after all). */
  readonly giveBack: (userId: number, day: string, messages: number) => Effect.Effect<void, StorageOutage>
  /** Today, as the quota counts days (YYYY-MM-DD of BILLING_TIMEZONE). */
  readonly currentDay: Effect.Effect<string>
  /** Messages counted today, and today's limit of `plan`. */
  readonly today: (userId: number, plan: Plan) => Effect.Effect<QuotaUse, StorageOutage>
}>()("bot/Quota") {
  static readonly layer = Layer.effect(
    Quota,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const config = yield* AppConfig
      const limitOf = (plan: Plan) => (plan === "free" ? config.freeDailyMessages : config.paidDailyMessages)
      const day = Clock.currentTimeMillis.pipe(Effect.map((now) => quotaDay(now, config.billingTimezone)))
      const counted = (userId: number, today: string) =>
        sql<{ messages: number }>`select messages from usage_daily where user_id = ${userId} and day = ${today}::date`.pipe(
          Effect.map((rows) => rows[0]?.messages ?? 0),
          Effect.mapError(storageOutage)
        )

      return Quota.of({
        consume: Effect.fn("Quota.consume")(function*(userId: number, plan: Plan, messages: number, { allowed, mail, refused }) {
          const limit = limitOf(plan)
          const today = yield* day
          // One round trip, not a transaction's four. The message's row is locked first, so a
          // takeover either happened before (nothing counted) or waits for this statement.
          const rows = yield* sql<{ owned: boolean; used: number | null; counted: number | null }>`
            with mine as (select id from messages where ${ownedBy(sql, mail)} for update),
            charged as (
              insert into usage_daily (user_id, day, messages)
              select ${userId}, ${today}::date, ${messages}
              where (${limit} = 0 or ${messages} <= ${limit}) and exists (select 1 from mine)
              on conflict (user_id, day) do update set messages = usage_daily.messages + excluded.messages
              where ${limit} = 0 or usage_daily.messages + excluded.messages <= ${limit}
              returning messages
            ),
            decided as (
              update messages set gate = case when exists (select 1 from charged) then ${allowed} else ${refused} end
              where id in (select id from mine)
              returning id
            )
            select exists (select 1 from decided) as owned, (select messages from charged) as used,
              (select messages from usage_daily where user_id = ${userId} and day = ${today}::date) as counted`
            .pipe(Effect.mapError(storageOutage))
          const row = rows[0]
          if (row === undefined || !row.owned) return yield* Effect.fail(takenOver(mail))
          return row.used === null
            ? { day: today, allowed: false, used: row.counted ?? 0, limit }
            : { day: today, allowed: true, used: row.used, limit }
        }),
        giveBack: Effect.fn("Quota.giveBack")(function*(userId: number, day: string, messages: number) {
          yield* sql`
            update usage_daily set messages = greatest(0, messages - ${messages})
            where user_id = ${userId} and day = ${day}::date`.pipe(Effect.mapError(storageOutage))
        }),
        currentDay: day,
        today: Effect.fn("Quota.today")(function*(userId: number, plan: Plan) {
          const today = yield* day
          const used = yield* counted(userId, today)
          const limit = limitOf(plan)
          return { day: today, allowed: limit === 0 || used < limit, used, limit }
        })
      })
    })
  )
}
