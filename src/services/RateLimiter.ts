import { Clock, Context, Duration, Effect, Layer } from "effect"
import { Redis, redisCall, type RedisOutage } from "./Redis.ts"

export interface RateDecision {
  readonly allowed: boolean
  /** The weighted count in the sliding window, this request included. */
  readonly count: number
}

/**
 * Sliding-window limits ("at most N per window"), counted as the current fixed window plus the
 * previous one weighted by how much of it still overlaps the sliding window: O(1) memory per key.
 */
export class RateLimiter extends Context.Service<RateLimiter, {
  readonly consume: (key: string, limit: number, window: Duration.Duration) => Effect.Effect<RateDecision, RedisOutage>
}>()("bot/RateLimiter") {
  /** Atomic in Redis (one Lua call), shared by every process. */
  static readonly layerRedis = Layer.effect(
    RateLimiter,
    Effect.gen(function*() {
      const { client } = yield* Redis
      const script = `
        local window = tonumber(ARGV[1])
        local now = tonumber(ARGV[2])
        local limit = tonumber(ARGV[3])
        local current = math.floor(now / window)
        local currentKey = KEYS[1] .. ':' .. current
        local previous = tonumber(redis.call('get', KEYS[1] .. ':' .. (current - 1)) or '0')
        local count = tonumber(redis.call('get', currentKey) or '0')
        local weight = 1 - (now % window) / window
        local estimate = previous * weight + count
        if estimate >= limit then return {0, math.floor(estimate)} end
        redis.call('incr', currentKey)
        redis.call('pexpire', currentKey, window * 2)
        return {1, math.floor(estimate) + 1}`
      return RateLimiter.of({
        consume: (key, limit, window) =>
          Clock.currentTimeMillis.pipe(
            Effect.flatMap((now) =>
              redisCall(() => client.eval(script, 1, `bot:rate:${key}`, Duration.toMillis(window), now, limit))
            ),
            Effect.map((reply) => {
              const [allowed, count] = reply as [number, number]
              return { allowed: allowed === 1, count }
            })
          )
      })
    })
  )

  /** The same algorithm in process memory, for the single-process embedded mode. */
  static readonly layerMemory = Layer.sync(RateLimiter, () => {
    const windows = new Map<string, { readonly index: number; readonly expiresAt: number; count: number; previous: number }>()
    return RateLimiter.of({
      consume: (key, limit, window) =>
        Clock.currentTimeMillis.pipe(Effect.map((now) => {
          const size = Duration.toMillis(window)
          const index = Math.floor(now / size)
          // Entries no sliding window reaches any more weigh nothing: prune them now and then.
          if (windows.size > 10_000) {
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
        }))
    })
  })
}
