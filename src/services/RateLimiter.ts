import type { Redis as IORedis } from "ioredis"
import { Clock, Context, Duration, Effect, Layer } from "effect"
import { Redis, redisCall, type RedisOutage } from "./Redis.ts"

export interface RateDecision {
  readonly allowed: boolean
  /** The weighted count in the sliding window, this request included. */
  readonly count: number
}

// One script call decides a whole batch of keys, in order: a key given twice counts twice.
// ioredis sends it by hash (EVALSHA) once loaded.
const slidingWindowScript = `
  local window = tonumber(ARGV[1])
  local now = tonumber(ARGV[2])
  local limit = tonumber(ARGV[3])
  local current = math.floor(now / window)
  local weight = 1 - (now % window) / window
  local out = {}
  for i, key in ipairs(KEYS) do
    local currentKey = key .. ':' .. current
    local previous = tonumber(redis.call('get', key .. ':' .. (current - 1)) or '0')
    local count = tonumber(redis.call('get', currentKey) or '0')
    local estimate = previous * weight + count
    if estimate >= limit then
      out[#out + 1] = 0
      out[#out + 1] = math.floor(estimate)
    else
      redis.call('incr', currentKey)
      redis.call('pexpire', currentKey, window * 2)
      out[#out + 1] = 1
      out[#out + 1] = math.floor(estimate) + 1
    end
  end
  return out`

type WithRateLimitCommand = IORedis & {
  botSlidingWindow(numKeys: number, ...args: Array<string | number>): Promise<Array<number>>
}

/**
 * Sliding-window limits ("at most N per window"), counted as the current fixed window plus the
 * previous one weighted by how much of it still overlaps the sliding window: O(1) memory per key.
 */
export class RateLimiter extends Context.Service<RateLimiter, {
  readonly consume: (key: string, limit: number, window: Duration.Duration) => Effect.Effect<RateDecision, RedisOutage>
  /** Many keys in one call (one round trip in Redis), decided in order. */
  readonly consumeMany: (
    keys: ReadonlyArray<string>,
    limit: number,
    window: Duration.Duration
  ) => Effect.Effect<ReadonlyArray<RateDecision>, RedisOutage>
}>()("bot/RateLimiter") {
  /** Atomic in Redis (one Lua call per batch), shared by every process. */
  static readonly layerRedis = Layer.effect(
    RateLimiter,
    Effect.gen(function*() {
      const { client } = yield* Redis
      client.defineCommand("botSlidingWindow", { lua: slidingWindowScript })
      const scripted = client as WithRateLimitCommand
      const consumeMany = (keys: ReadonlyArray<string>, limit: number, window: Duration.Duration) =>
        keys.length === 0
          ? Effect.succeed([])
          : Clock.currentTimeMillis.pipe(
            Effect.flatMap((now) =>
              redisCall(() =>
                scripted.botSlidingWindow(
                  keys.length,
                  ...keys.map((key) => `bot:rate:${key}`),
                  Duration.toMillis(window),
                  now,
                  limit
                )
              )
            ),
            Effect.map((reply) => keys.map((_, i) => ({ allowed: reply[2 * i] === 1, count: reply[2 * i + 1]! })))
          )
      return RateLimiter.of({
        consumeMany,
        consume: (key, limit, window) => consumeMany([key], limit, window).pipe(Effect.map((decisions) => decisions[0]!))
      })
    })
  )

  /** The same algorithm in process memory, for the single-process embedded mode. */
  static readonly layerMemory = Layer.sync(RateLimiter, () => {
    const windows = new Map<string, { readonly index: number; readonly expiresAt: number; count: number; previous: number }>()
    const decide = (key: string, limit: number, size: number, now: number): RateDecision => {
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
    }
    const consumeMany = (keys: ReadonlyArray<string>, limit: number, window: Duration.Duration) =>
      Clock.currentTimeMillis.pipe(
        Effect.map((now) => keys.map((key) => decide(key, limit, Duration.toMillis(window), now)))
      )
    return RateLimiter.of({
      consumeMany,
      consume: (key, limit, window) => consumeMany([key], limit, window).pipe(Effect.map((decisions) => decisions[0]!))
    })
  })
}
