import { Context, Duration, Effect, Exit, Layer, Metric } from "effect"
import { SqlClient } from "effect/sql"
import { AppConfig } from "./AppConfig.ts"
import { rateLimitRejections } from "./Metrics.ts"
import { type RateDecision, RateLimiter } from "./RateLimiter.ts"
import type { RedisOutage } from "./Redis.ts"
import { type StorageOutage, storageOutage } from "./StorageOutage.ts"

/**
 * The product's named limits (README, Rate limits; defaults from the product spec):
 * - `updates`: Telegram updates per minute per user (past it: one "slow down", then silence);
 * - `llm`: LLM turns per minute per user (past it: a notice saying when to try again);
 * - `lemon_webhook`: LemonSqueezy webhook requests per minute per source address (429);
 * - `export`: data exports per hour per user.
 */
export type LimitName = "updates" | "llm" | "lemon_webhook" | "export"

/** How long an operator's override (rate_limit_overrides) may take to apply. */
const overridesTtl = Duration.seconds(30)

/** Named limits, with the per-user overrides an operator sets in `rate_limit_overrides`. */
export class RateLimits extends Context.Service<RateLimits, {
  /**
   * Decides one request per subject (a user id, or an address for `lemon_webhook`), in order,
   * against the named limit, a user's override replacing the default. Refusals are counted in
   * rate_limit_rejections_total{limit}. Fails when Redis (RedisOutage) or, for the overrides,
   * Postgres (StorageOutage) is away.
   */
  readonly consume: (
    name: LimitName,
    subjects: ReadonlyArray<string | number>
  ) => Effect.Effect<ReadonlyArray<RateDecision & { readonly limit: number }>, RedisOutage | StorageOutage>
}>()("bot/RateLimits") {
  static readonly layer = Layer.effect(
    RateLimits,
    Effect.gen(function*() {
      const config = yield* AppConfig
      const limiter = yield* RateLimiter
      const sql = yield* SqlClient.SqlClient
      const rules: Record<LimitName, { readonly max: number; readonly window: Duration.Duration }> = {
        updates: { max: config.rateLimits.updatesPerMinute, window: Duration.minutes(1) },
        llm: { max: config.rateLimits.llmPerMinute, window: Duration.minutes(1) },
        lemon_webhook: { max: config.rateLimits.lemonWebhookPerMinute, window: Duration.minutes(1) },
        export: { max: config.rateLimits.exportPerHour, window: Duration.hours(1) }
      }
      // The whole table (operators set a handful of rows), read at most every 30 s.
      const overrides = yield* sql<{ user_id: bigint; limit_name: string; max: number }>`
        select user_id, limit_name, max from rate_limit_overrides`.pipe(
        Effect.map((rows) => new Map(rows.map((row) => [`${row.limit_name}:${row.user_id}`, row.max]))),
        Effect.mapError(storageOutage),
        Effect.cachedWithTTL((exit) => (Exit.isSuccess(exit) ? overridesTtl : Duration.zero))
      )
      const rejected = Object.fromEntries(
        Object.keys(rules).map((name) => [name, Metric.withAttributes(rateLimitRejections, { limit: name })])
      ) as Record<LimitName, Metric.Counter<number>>

      return RateLimits.of({
        consume: Effect.fn("RateLimits.consume")(function*(name: LimitName, subjects: ReadonlyArray<string | number>) {
          if (subjects.length === 0) return []
          const rule = rules[name]
          const set = name === "lemon_webhook" ? undefined : yield* overrides
          const requests = subjects.map((subject) => ({ key: `${name}:${subject}`, limit: set?.get(`${name}:${subject}`) ?? rule.max }))
          const decisions = yield* limiter.consumeMany(requests, rule.window)
          const refused = decisions.filter((d) => !d.allowed).length
          if (refused > 0) yield* Metric.update(rejected[name], refused)
          return decisions.map((decision, i) => ({ ...decision, limit: requests[i]!.limit }))
        })
      })
    })
  )
}
