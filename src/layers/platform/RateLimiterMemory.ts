import { Clock, Duration, Effect, Layer } from "effect"
import { type RateDecision, RateLimiter } from "../../services/platform/RateLimiter.ts"

/** Past this many keys, windows no sliding window reaches any more are pruned. */
const pruneAbove = 10_000

/** The same algorithm as the Redis script, in process memory, for the single-process embedded mode. */
export const layer = Layer.sync(RateLimiter, () => {
  const windows = new Map<string, { readonly index: number; readonly expiresAt: number; count: number; previous: number }>()
  const decide = (key: string, limit: number, size: number, now: number): RateDecision => {
    const index = Math.floor(now / size)
    if (windows.size > pruneAbove) {
      for (const [k, w] of windows) if (w.expiresAt <= now) windows.delete(k)
    }
    const stored = windows.get(key)
    const state = stored?.index === index
      ? stored
      : { index, expiresAt: (index + 2) * size, count: 0, previous: stored?.index === index - 1 ? stored.count : 0 }
    windows.set(key, state)
    const estimate = state.previous * (1 - (now % size) / size) + state.count
    if (estimate >= limit) return { allowed: false, count: Math.floor(estimate) }
    state.count += 1
    return { allowed: true, count: Math.floor(estimate) + 1 }
  }
  return RateLimiter.of({
    consumeMany: Effect.fn("RateLimiter.consumeMany")(
      function*(keys: ReadonlyArray<string>, limit: number, window: Duration.Duration) {
        const now = yield* Clock.currentTimeMillis
        return keys.map((key) => decide(key, limit, Duration.toMillis(window), now))
      }
    )
  })
})
