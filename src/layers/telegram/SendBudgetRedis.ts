import type { Redis as IORedis } from "ioredis"
import { Effect, Layer } from "effect"
import { AppConfig } from "../../services/platform/AppConfig.ts"
import { Redis, redisCall } from "../../services/platform/Redis.ts"
import { type BotPace, memoryPace, SendBudget } from "../../services/telegram/SendBudget.ts"

const key = "bot:send-budget"

// The next free send time (µs, Redis's own clock: every process and host reads the same one).
// take: 0 and the time moves one interval on, or the µs left until it is free. pause: the time
// moves to at least now + ARGV[2]. The key outlives any wait it holds by a minute.
const paceScript = `
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local nextAt = tonumber(redis.call('GET', KEYS[1]) or '0')
  local micros = tonumber(ARGV[2])
  if ARGV[1] == 'pause' then
    if now + micros > nextAt then redis.call('SET', KEYS[1], now + micros, 'PX', math.ceil(micros / 1000) + 60000) end
    return 0
  end
  if nextAt > now then return nextAt - now end
  redis.call('SET', KEYS[1], now + micros, 'PX', 60000)
  return 0`

type WithPaceCommand = IORedis & {
  botSendPace(key: string, op: "take" | "pause", micros: number): Promise<number>
}

/**
 * The send budget shared by every process on REDIS_URL: one pace in Redis (an atomic script),
 * each process's own priorities and chats' pace on top. Redis away: the process paces alone at
 * the same rate until it is back (with two processes, up to twice the rate: sends matter more).
 */
export const layer = Layer.effect(
  SendBudget,
  Effect.gen(function*() {
    const { telegramSendsPerSecond } = yield* AppConfig
    const { client } = yield* Redis
    client.defineCommand("botSendPace", { numberOfKeys: 1, lua: paceScript })
    const scripted = client as WithPaceCommand
    const intervalMicros = Math.round(1_000_000 / telegramSendsPerSecond)
    const fallback = yield* memoryPace(telegramSendsPerSecond)
    let away = false

    const alone = <A>(local: Effect.Effect<A>) => (error: { readonly message: string }) =>
      Effect.gen(function*() {
        if (!away) yield* Effect.logWarning("Redis is away: this process paces its Telegram sends alone", error.message)
        away = true
        return yield* local
      })
    const backAgain = Effect.sync(() => void (away = false))

    const pace: BotPace = {
      take: redisCall(() => scripted.botSendPace(key, "take", intervalMicros)).pipe(
        Effect.tap(backAgain),
        Effect.map((micros) => micros / 1000),
        Effect.catch(alone(fallback.take))
      ),
      pause: (millis) =>
        redisCall(() => scripted.botSendPace(key, "pause", Math.round(millis * 1000))).pipe(
          Effect.asVoid,
          Effect.catch(alone(fallback.pause(millis)))
        )
    }
    return yield* SendBudget.make(pace)
  })
)
