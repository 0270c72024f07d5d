import { Context, Effect, Layer, Metric } from "effect"
import { SqlClient } from "effect/sql"
import type { Plan } from "../billing/Entitlement.ts"
import { AppConfig } from "../platform/AppConfig.ts"
import { spendCapHits } from "../platform/Metrics.ts"
import { type StorageOutage, storageOutage } from "../platform/StorageOutage.ts"

/** Whether a user's next LLM turn is within the spend caps, and if not which one it passes. */
export type SpendCheck =
  | { readonly _tag: "Within" }
  /** The user's tokens today reached `limit` (USER_DAILY_TOKENS, or PAID_DAILY_TOKENS on a paid plan). */
  | { readonly _tag: "UserCap"; readonly limit: number }
  /** All turns today cost `limitUsd` or more (DAILY_SPEND_LIMIT_USD). */
  | { readonly _tag: "DailySpend"; readonly limitUsd: number }

/** A micro-cent is 1e-8 USD: the unit of usage.cost_micro_cents. */
const microCentsPerUsd = 100_000_000

/** A turn's cost in micro-cents at `prices` (USD per million tokens), rounded. */
export const costOf = (prices: { readonly inputPerMtok: number; readonly outputPerMtok: number }, tokensIn: number, tokensOut: number) =>
  Math.round((tokensIn * prices.inputPerMtok + tokensOut * prices.outputPerMtok) * (microCentsPerUsd / 1_000_000))

/**
 * What turns cost and the caps on it (issue 9: the LLM bill is the way to hurt an operator).
 * Costs come from LLM_PRICE_INPUT_PER_MTOK and LLM_PRICE_OUTPUT_PER_MTOK (USD per million
 * tokens); days are quota days (BILLING_TIMEZONE).
 */
export class Spend extends Context.Service<Spend, {
  /** A turn's cost in micro-cents (1e-8 USD), rounded: what usage.cost_micro_cents holds. */
  readonly costOf: (tokensIn: number, tokensOut: number) => number
  /**
   * Whether `userId` on `plan` may have another LLM turn on quota `day` (YYYY-MM-DD): their
   * tokens (in + out) today, then everyone's cost today, against the caps (0: none). A refusal
   * is counted in llm_spend_cap_hits_total and logged at Error once a day per cap (per user for
   * the user cap). Fails with StorageOutage.
   */
  readonly check: (userId: number, plan: Plan, day: string) => Effect.Effect<SpendCheck, StorageOutage>
}>()("bot/Spend") {
  static readonly layer = Layer.effect(
    Spend,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const config = yield* AppConfig
      const dayStart = (day: string) => sql`(${day}::date::timestamp at time zone ${config.billingTimezone})`

      const userTokens = (userId: number, day: string) =>
        sql<{ tokens: string }>`
          select coalesce(sum(tokens_in + tokens_out), 0) as tokens from usage
          where user_id = ${userId} and created_at >= ${dayStart(day)}`.pipe(
          Effect.map((rows) => Number(rows[0]?.tokens ?? 0)),
          Effect.mapError(storageOutage)
        )

      // One indexed sum over the day's turns (usage_day), only when the cap is set.
      const spentToday = (day: string) =>
        sql<{ spent: string }>`
          select coalesce(sum(cost_micro_cents), 0) as spent from usage where created_at >= ${dayStart(day)}`.pipe(
          Effect.map((rows) => Number(rows[0]?.spent ?? 0)),
          Effect.mapError(storageOutage)
        )

      // Once a day per cap: the operator needs to know, not to be flooded.
      let loggedDay = ""
      const logged = new Set<string>()
      const refuse = (result: Exclude<SpendCheck, { _tag: "Within" }>, day: string, userId: number) =>
        Effect.gen(function*() {
          const cap = result._tag === "UserCap" ? "user" : "daily_spend"
          yield* Metric.update(Metric.withAttributes(spendCapHits, { cap }), 1)
          if (loggedDay !== day) {
            loggedDay = day
            logged.clear()
          }
          const key = result._tag === "UserCap" ? `user:${userId}` : cap
          if (!logged.has(key)) {
            logged.add(key)
            yield* result._tag === "UserCap"
              ? Effect.logError("a user reached the daily token cap: their messages are not sent to the LLM today", { userId, limit: result.limit, day })
              : Effect.logError("the daily spend cap is reached: no message is sent to the LLM until the day ends", { limitUsd: result.limitUsd, day })
          }
          return result
        })

      return Spend.of({
        costOf: (tokensIn, tokensOut) => costOf(config.llmPrices, tokensIn, tokensOut),
        check: Effect.fn("Spend.check")(function*(userId: number, plan: Plan, day: string) {
          const userLimit = plan === "free" ? config.dailyTokens.free : config.dailyTokens.paid
          if (userLimit > 0 && (yield* userTokens(userId, day)) >= userLimit) {
            return yield* refuse({ _tag: "UserCap", limit: userLimit }, day, userId)
          }
          const limitUsd = config.dailySpendLimitUsd
          if (limitUsd > 0 && (yield* spentToday(day)) >= limitUsd * microCentsPerUsd) {
            return yield* refuse({ _tag: "DailySpend", limitUsd }, day, userId)
          }
          return { _tag: "Within" } as const
        })
      })
    })
  )

  /** Costs from AppConfig's prices, every check within the caps: for tests of the turn without a database. */
  static readonly layerTest = Layer.effect(
    Spend,
    Effect.gen(function*() {
      const config = yield* AppConfig
      return Spend.of({
        costOf: (tokensIn, tokensOut) => costOf(config.llmPrices, tokensIn, tokensOut),
        check: () => Effect.succeed({ _tag: "Within" })
      })
    })
  )
}
