import { Context, type Duration, type Effect } from "effect"
import type { RedisOutage } from "./Redis.ts"

export interface RateDecision {
  readonly allowed: boolean
  /** The weighted count in the sliding window, this request included when allowed. */
  readonly count: number
}

/**
 * Sliding-window limits ("at most N per window"), counted as the current fixed window plus the
 * previous one weighted by how much of it still overlaps the sliding window: O(1) memory per key.
 * Time comes from the Clock. Implementations: `layers/platform/RateLimiterRedis.ts` (one Lua
 * call per batch, shared by every process) and `RateLimiterMemory.ts` (the same rule in process).
 */
export class RateLimiter extends Context.Service<RateLimiter, {
  /**
   * Decides each key in order, counting the allowed ones: a key given twice counts twice.
   * `limit` is the most allowed per sliding `window`. The in-process layer never fails.
   */
  readonly consumeMany: (
    keys: ReadonlyArray<string>,
    limit: number,
    window: Duration.Duration
  ) => Effect.Effect<ReadonlyArray<RateDecision>, RedisOutage>
}>()("bot/RateLimiter") {}
