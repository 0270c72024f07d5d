import { Clock, Duration, Effect, Layer } from "effect"
import { decide, RateLimiter, type RateRequest } from "../../services/platform/RateLimiter.ts"

/** Past this many keys, windows no sliding window reaches any more are pruned. */
const pruneAbove = 10_000

interface Window {
  readonly index: number
  readonly expiresAt: number
  count: number
  readonly previous: number
}

/** The same rule as the Redis script, in process memory, for the single-process embedded mode. */
export const layer = Layer.sync(RateLimiter, () => {
  const windows = new Map<string, Window>()
  const consume = (request: RateRequest, size: number, now: number) => {
    const index = Math.floor(now / size)
    if (windows.size > pruneAbove) {
      for (const [k, w] of windows) if (w.expiresAt <= now) windows.delete(k)
    }
    const stored = windows.get(request.key)
    const state: Window = stored?.index === index
      ? stored
      : { index, expiresAt: (index + 2) * size, count: 0, previous: stored?.index === index - 1 ? stored.count : 0 }
    windows.set(request.key, state)
    const decision = decide({ previous: state.previous, current: state.count }, request.limit, size, now)
    if (decision.allowed) state.count += 1
    return decision
  }
  return RateLimiter.of({
    consumeMany: Effect.fn("RateLimiter.consumeMany")(function*(requests: ReadonlyArray<RateRequest>, window: Duration.Duration) {
      const now = yield* Clock.currentTimeMillis
      return requests.map((request) => consume(request, Duration.toMillis(window), now))
    })
  })
})
