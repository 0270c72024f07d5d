import type { Redis as IORedis } from "ioredis"
import { Clock, Duration, Effect, Layer } from "effect"
import { decide, RateLimiter, type RateRequest } from "../../services/platform/RateLimiter.ts"
import { Redis, redisCall } from "../../services/platform/Redis.ts"

// One script call decides a whole batch of keys, in order, with the rule of `decide` (which the
// caller applies again to the returned counts, for the retry-after). ioredis sends it by hash
// (EVALSHA) once loaded. Time is the caller's (ARGV[2]), so every process and the tests agree.
const slidingWindowScript = `
  local window = tonumber(ARGV[1])
  local now = tonumber(ARGV[2])
  local current = math.floor(now / window)
  local weight = 1 - (now % window) / window
  local out = {}
  for i, key in ipairs(KEYS) do
    local limit = tonumber(ARGV[2 + i])
    local currentKey = key .. ':' .. current
    local previous = tonumber(redis.call('get', key .. ':' .. (current - 1)) or '0')
    local count = tonumber(redis.call('get', currentKey) or '0')
    if previous * weight + count < limit then
      redis.call('incr', currentKey)
      redis.call('pexpire', currentKey, window * 2)
    end
    out[#out + 1] = previous
    out[#out + 1] = count
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
      consumeMany: Effect.fn("RateLimiter.consumeMany")(function*(requests: ReadonlyArray<RateRequest>, window: Duration.Duration) {
        if (requests.length === 0) return []
        const now = yield* Clock.currentTimeMillis
        const windowMillis = Duration.toMillis(window)
        const reply = yield* redisCall(() =>
          scripted.botSlidingWindow(
            requests.length,
            ...requests.map((r) => `bot:rate:${r.key}`),
            windowMillis,
            now,
            ...requests.map((r) => r.limit)
          )
        )
        return requests.map((r, i) => decide({ previous: reply[2 * i]!, current: reply[2 * i + 1]! }, r.limit, windowMillis, now))
      })
    })
  })
)
