import { Context, type Duration, type Effect } from "effect"
import type { RedisOutage } from "./Redis.ts"

/** One request against a key's limit: `limit` is the most allowed per window (0: none). */
export interface RateRequest {
  readonly key: string
  readonly limit: number
}

export interface RateDecision {
  readonly allowed: boolean
  /** The weighted count in the sliding window, this request included when allowed. */
  readonly count: number
  /** When refused: ms until a request would be allowed, if none came meanwhile (0 when allowed). */
  readonly retryAfterMillis: number
}

/** The counts of a key's two fixed windows, as both implementations keep them. */
export interface WindowCounts {
  readonly previous: number
  readonly current: number
}

/**
 * The sliding-window rule both implementations apply: the current fixed window's count plus the
 * previous one's weighted by how much of it the sliding window still covers. Allowed while that
 * estimate is below the limit.
 */
export const decide = (counts: WindowCounts, limit: number, windowMillis: number, now: number): RateDecision => {
  const elapsed = now % windowMillis
  const estimate = counts.previous * (1 - elapsed / windowMillis) + counts.current
  if (estimate < limit) return { allowed: true, count: Math.floor(estimate) + 1, retryAfterMillis: 0 }
  return { allowed: false, count: Math.floor(estimate), retryAfterMillis: retryAfterMillis(counts, limit, windowMillis, elapsed) }
}

/** How long until the estimate falls below `limit`, `elapsed` ms into the current window. */
const retryAfterMillis = (counts: WindowCounts, limit: number, windowMillis: number, elapsed: number): number => {
  if (limit <= 0) return windowMillis
  if (counts.current < limit) {
    // Within this window, as the previous one's weight shrinks.
    const at = windowMillis * (1 - (limit - counts.current) / counts.previous)
    return Math.max(1, Math.floor(at - elapsed) + 1)
  }
  // In the next window, where this one's count becomes the weighted "previous".
  const into = windowMillis * (1 - limit / counts.current)
  return Math.floor(windowMillis - elapsed + into) + 1
}

/**
 * Sliding-window limits ("at most N per window"), O(1) memory per key, time from the Clock.
 * Implementations: `layers/platform/RateLimiterRedis.ts` (one Lua call per batch, shared by
 * every process) and `RateLimiterMemory.ts` (the same rule in process).
 */
export class RateLimiter extends Context.Service<RateLimiter, {
  /**
   * Decides each request in order, counting the allowed ones: a key given twice counts twice.
   * The in-process layer never fails.
   */
  readonly consumeMany: (
    requests: ReadonlyArray<RateRequest>,
    window: Duration.Duration
  ) => Effect.Effect<ReadonlyArray<RateDecision>, RedisOutage>
}>()("bot/RateLimiter") {}
