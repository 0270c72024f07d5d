import { randomUUID } from "node:crypto"
import type { Redis as IORedis } from "ioredis"
import { Clock, Effect, Layer } from "effect"
import { AppConfig } from "../../services/platform/AppConfig.ts"
import { Redis, redisCall } from "../../services/platform/Redis.ts"
import { type BotPace, demandHoldSends, memoryPace, type Reservation, SendBudget } from "../../services/telegram/SendBudget.ts"

const key = "bot:send-budget"
/** Who asked for sends of which rank (SendBudget's demandRank), when: field "<rank>:<process>", value µs (Redis's clock). */
const demandKey = "bot:send-demand"
/** A chat's pace: the key lives as long as the pace runs (its PTTL), whatever each host's clock says. */
const chatKey = (chatId: number) => `bot:chat-pace:${chatId}`

// The next free send time (µs, Redis's own clock: every process and host reads the same one).
// reserve: the next ARGV[3] sends, ARGV[2] µs apart, are the caller's (process ARGV[6], sends at
// priority rank ARGV[4]); returns the µs until the first; or, when the pace is booked ahead and
// another process asked for sends at a more urgent rank within the last ARGV[5] µs, minus the µs
// it is booked for (none reserved). The caller's own asks at more urgent ranks are over (it asks
// at its most urgent), and a minute-old ask is forgotten.
// pause: the time moves to at least now + ARGV[2]. Keys outlive what they hold by a minute.
const paceScript = `
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local nextAt = tonumber(redis.call('GET', KEYS[1]) or '0')
  local micros = tonumber(ARGV[2])
  if ARGV[1] == 'pause' then
    if now + micros > nextAt then redis.call('SET', KEYS[1], now + micros, 'PX', math.ceil(micros / 1000) + 60000) end
    return 0
  end
  local rank = tonumber(ARGV[4])
  local asks = redis.call('HGETALL', KEYS[2])
  for i = 1, #asks, 2 do
    local askRank, owner = string.match(asks[i], '^(%d+):(.*)$')
    local at = tonumber(asks[i + 1])
    if now - at > 60000000 or (owner == ARGV[6] and tonumber(askRank) < rank) then
      redis.call('HDEL', KEYS[2], asks[i])
    elseif nextAt > now and owner ~= ARGV[6] and tonumber(askRank) < rank and now - at < tonumber(ARGV[5]) then
      return now - nextAt
    end
  end
  redis.call('HSET', KEYS[2], rank .. ':' .. ARGV[6], now)
  redis.call('PEXPIRE', KEYS[2], 60000)
  local first = math.max(nextAt, now)
  local after = first + tonumber(ARGV[3]) * micros
  redis.call('SET', KEYS[1], after, 'PX', math.ceil((after - now) / 1000) + 60000)
  return first - now`

type WithPaceCommand = IORedis & {
  botSendPace(
    key: string,
    demand: string,
    op: "reserve" | "pause",
    micros: number,
    count: number,
    rank: number,
    holdMicros: number,
    process: string
  ): Promise<number>
}

/**
 * The send budget shared by every process on REDIS_URL: one pace in Redis (an atomic script),
 * each process's own priorities on top; a process's more urgent sends hold back the others'
 * less urgent ones (the script refuses them sends meanwhile). Each chat's pace is kept by the
 * process writing to it and left in Redis for the next one. Redis away (or not answering within
 * 1 s): the process paces alone at the same rate until it is back, trying Redis once a second
 * (with two processes, up to twice the rate: sends matter more).
 */
export const layer = Layer.effect(
  SendBudget,
  Effect.gen(function*() {
    const { telegramSendsPerSecond } = yield* AppConfig
    const { client } = yield* Redis
    client.defineCommand("botSendPace", { numberOfKeys: 2, lua: paceScript })
    const scripted = client as WithPaceCommand
    const intervalMicros = Math.round(1_000_000 / telegramSendsPerSecond)
    const holdMicros = demandHoldSends * intervalMicros
    // This process, among those sharing the pace.
    const processId = randomUUID()
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
      reserve: (count, rank) =>
        viaRedis(
          () => scripted.botSendPace(key, demandKey, "reserve", intervalMicros, count, rank, holdMicros, processId),
          fallback.reserve(count, rank).pipe(Effect.map((got) => ("inMs" in got ? got.inMs : 0) * 1000))
        ).pipe(Effect.map((micros): Reservation => (micros < 0 ? { heldMs: -micros / 1000 } : { inMs: micros / 1000 }))),
      pause: (millis) =>
        viaRedis(
          () => scripted.botSendPace(key, demandKey, "pause", Math.round(millis * 1000), 0, 0, 0, processId),
          fallback.pause(millis).pipe(Effect.as(0))
        ).pipe(Effect.asVoid),
      // PTTL is -2 for no key (rested), -1 never (the key is always set with PX). Redis away:
      // the process's own record of the chat is all it knows.
      chatPace: (chatId) =>
        viaRedis(() => client.pttl(chatKey(chatId)), Effect.succeed(0)).pipe(Effect.map((ms) => Math.max(0, ms))),
      keepChatPace: (chatId, millis) =>
        millis <= 0
          ? Effect.void
          : viaRedis(() => client.set(chatKey(chatId), 1, "PX", Math.ceil(millis)).then(() => undefined), Effect.void)
    }
    return yield* SendBudget.make(pace)
  })
)
