import type { Redis as IORedis } from "ioredis"
import { Clock, Duration, Effect, Layer } from "effect"
import { RateLimiter } from "../../services/platform/RateLimiter.ts"
import { Redis, redisCall } from "../../services/platform/Redis.ts"

// One script call decides a whole batch of keys, in order. ioredis sends it by hash (EVALSHA)
// once loaded. Time is the caller's (ARGV[2]), so every process and the tests agree on it.
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

/** Atomic in Redis (one Lua call per batch), shared by every process. */
export const layer = Layer.effect(
  RateLimiter,
  Effect.gen(function*() {
    const { client } = yield* Redis
    client.defineCommand("botSlidingWindow", { lua: slidingWindowScript })
    const scripted = client as WithRateLimitCommand
    return RateLimiter.of({
      consumeMany: Effect.fn("RateLimiter.consumeMany")(
        function*(keys: ReadonlyArray<string>, limit: number, window: Duration.Duration) {
          if (keys.length === 0) return []
          const now = yield* Clock.currentTimeMillis
          const reply = yield* redisCall(() =>
            scripted.botSlidingWindow(keys.length, ...keys.map((key) => `bot:rate:${key}`), Duration.toMillis(window), now, limit)
          )
          return keys.map((_, i) => ({ allowed: reply[2 * i] === 1, count: reply[2 * i + 1]! }))
        }
      )
    })
  })
)
