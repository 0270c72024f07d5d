import type { Redis as IORedis } from "ioredis"
import { Clock, Effect, Layer } from "effect"
import { AppConfig } from "../../services/platform/AppConfig.ts"
import { Redis, redisCall } from "../../services/platform/Redis.ts"
import { type BotPace, memoryPace, SendBudget } from "../../services/telegram/SendBudget.ts"

const key = "bot:send-budget"
/** A chat's pace: the key lives as long as the pace runs (its PTTL), whatever each host's clock says. */
const chatKey = (chatId: number) => `bot:chat-pace:${chatId}`

// The next free send time (µs, Redis's own clock: every process and host reads the same one).
// reserve: the next ARGV[3] sends, ARGV[2] µs apart, are the caller's; returns the µs until the
// first. pause: the time moves to at least now + ARGV[2]. The key outlives what it holds by a minute.
const paceScript = `
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local nextAt = tonumber(redis.call('GET', KEYS[1]) or '0')
  local micros = tonumber(ARGV[2])
  if ARGV[1] == 'pause' then
    if now + micros > nextAt then redis.call('SET', KEYS[1], now + micros, 'PX', math.ceil(micros / 1000) + 60000) end
    return 0
  end
  local first = math.max(nextAt, now)
  local after = first + tonumber(ARGV[3]) * micros
  redis.call('SET', KEYS[1], after, 'PX', math.ceil((after - now) / 1000) + 60000)
  return first - now`

type WithPaceCommand = IORedis & {
  botSendPace(key: string, op: "reserve" | "pause", micros: number, count: number): Promise<number>
}

/**
 * The send budget shared by every process on REDIS_URL: one pace in Redis (an atomic script),
 * each process's own priorities on top; each chat's pace is kept by the process writing to it
 * and left in Redis for the next one. Redis away (or not answering within 1 s): the process paces
 * alone at the same rate until it is back, trying Redis once a second (with two processes, up
 * to twice the rate: sends matter more).
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
    // When Redis went away (ms), or 0: while away it is tried again once a second only, so a
    // hung connection does not slow every send to its timeout.
    let awaySince = 0
    let triedAt = 0

    /** `shared` through Redis, or `local` while Redis is away or does not answer within 1 s. */
    const viaRedis = <A>(shared: () => Promise<A>, local: Effect.Effect<A>) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        if (awaySince > 0 && now - triedAt < 1_000) return yield* local
        triedAt = now
        return yield* redisCall(shared).pipe(
          Effect.timeoutOrElse({ duration: "1 second", orElse: () => Effect.fail({ message: "no answer within 1 s" }) }),
          Effect.tap(() => Effect.sync(() => void (awaySince = 0))),
          Effect.catch((error) =>
            Effect.gen(function*() {
              if (awaySince === 0) {
                awaySince = now
                yield* Effect.logWarning("Redis is away: this process paces its Telegram sends alone", error.message)
              }
              return yield* local
            })
          )
        )
      })

    const pace: BotPace = {
      intervalMs: intervalMicros / 1000,
      reserve: (count) =>
        viaRedis(() => scripted.botSendPace(key, "reserve", intervalMicros, count), fallback.reserve(count).pipe(Effect.map((ms) => ms * 1000)))
          .pipe(Effect.map((micros) => micros / 1000)),
      pause: (millis) =>
        viaRedis(() => scripted.botSendPace(key, "pause", Math.round(millis * 1000), 0), fallback.pause(millis).pipe(Effect.as(0))).pipe(
          Effect.asVoid
        ),
      // PTTL is -2 for no key (rested), -1 never (the key is always set with PX). Redis away:
      // the process's own record of the chat is all it knows.
      chatPace: (chatId) => viaRedis(() => client.pttl(chatKey(chatId)), Effect.succeed(0)).pipe(Effect.map((ms) => Math.max(0, ms))),
      keepChatPace: (chatId, millis) =>
        millis <= 0 ? Effect.void : viaRedis(() => client.set(chatKey(chatId), 1, "PX", Math.ceil(millis)).then(() => undefined), Effect.void)
    }
    return yield* SendBudget.make(pace)
  })
)
