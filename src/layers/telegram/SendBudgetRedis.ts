import { randomUUID } from "node:crypto"
import type { Redis as IORedis } from "ioredis"
import { Clock, Effect, Layer } from "effect"
import { AppConfig } from "../../services/platform/AppConfig.ts"
import { Redis, redisCall } from "../../services/platform/Redis.ts"
import { type BotPace, demandHoldSends, gapMs, memoryPace, type Reservation, SendBudget } from "../../services/telegram/SendBudget.ts"

/**
 * The bot's window, one string: until when (µs) a 429 pauses every send, then the latest sends'
 * times (µs, Redis's own clock: every process and host reads the same one), oldest first.
 */
const windowKey = "bot:send-window"
/** Who asked for sends of which rank (SendBudget's demandRank), when: field "<rank>:<process>", value µs. */
const demandKey = "bot:send-demand"
/** A chat's pace: the key lives as long as the pace runs (its PTTL), whatever each host's clock says. */
const chatKey = (chatId: number) => `bot:chat-pace:${chatId}`

// SendBudget's nextSendAt over the window kept in Redis (one GET and one SET a call: as few
// commands as the even pace it replaced). reserve: the next ARGV[3] sends, each at least ARGV[2]
// µs after the last, ARGV[7] sends a window of ARGV[8] µs and none sooner than ARGV[9] µs from
// now, are the caller's (process ARGV[6], sends at priority rank ARGV[4]); returns {0, now, the
// µs time of each (its place)}; or, when the window lets no send go now and another process
// asked for sends at a more urgent rank within the last ARGV[5] µs, {1, the µs until it does}
// (none reserved). The caller's own asks at more urgent ranks are over (it asks at its most
// urgent), and a minute-old ask is forgotten. The places ARGV[10...] were not used: freed first.
// pause: nothing before now + ARGV[2] µs. Times are written with %d (Lua's own format keeps 14
// digits: a place must read back exactly); sends older than the window are forgotten (by time,
// not count: a place freed must not let in a send the window still holds), and the key outlives
// what it holds by a minute.
const windowScript = `
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local micros = tonumber(ARGV[2])
  local stored = redis.call('GET', KEYS[1]) or '0'
  local paused, recent = nil, {}
  for v in string.gmatch(stored, '%d+') do
    if paused == nil then paused = tonumber(v) else recent[#recent + 1] = v end
  end
  local sends, span = tonumber(ARGV[7]), tonumber(ARGV[8])
  local function save()
    local kept = {string.format('%d', paused)}
    for _, at in ipairs(recent) do if tonumber(at) > now - span then kept[#kept + 1] = at end end
    local last = math.max(paused, tonumber(recent[#recent] or '0'))
    redis.call('SET', KEYS[1], table.concat(kept, ' '), 'PX', math.max(0, math.ceil((last - now) / 1000)) + 60000)
  end
  if ARGV[1] == 'pause' then
    paused = math.max(paused, now + micros)
    save()
    return 0
  end
  if #ARGV > 9 then
    local gone = {}
    for i = 10, #ARGV do gone[ARGV[i]] = true end
    local left = {}
    for _, at in ipairs(recent) do if not gone[at] then left[#left + 1] = at end end
    recent = left
  end
  local function nextAt(floor)
    local at = math.max(floor, paused)
    if #recent > 0 then at = math.max(at, tonumber(recent[#recent]) + micros) end
    if #recent >= sends then at = math.max(at, tonumber(recent[#recent - sends + 1]) + span) end
    return at
  end
  local first = nextAt(now)
  local rank = tonumber(ARGV[4])
  local asks = redis.call('HGETALL', KEYS[2])
  for i = 1, #asks, 2 do
    local askRank, owner = string.match(asks[i], '^(%d+):(.*)$')
    local at = tonumber(asks[i + 1])
    if now - at > 60000000 or (owner == ARGV[6] and tonumber(askRank) < rank) then
      redis.call('HDEL', KEYS[2], asks[i])
    elseif first > now and owner ~= ARGV[6] and tonumber(askRank) < rank and now - at < tonumber(ARGV[5]) then
      if #ARGV > 9 then save() end
      return {1, first - now}
    end
  end
  redis.call('HSET', KEYS[2], rank .. ':' .. ARGV[6], now)
  redis.call('PEXPIRE', KEYS[2], 60000)
  local reply = {0, now}
  for i = 1, tonumber(ARGV[3]) do
    local at = string.format('%d', nextAt(now + tonumber(ARGV[9])))
    recent[#recent + 1] = at
    reply[i + 2] = tonumber(at)
  end
  save()
  return reply`

type WithWindowCommand = IORedis & {
  botSendWindow(
    window: string,
    demand: string,
    op: "reserve" | "pause",
    micros: number,
    count: number,
    rank: number,
    holdMicros: number,
    process: string,
    windowSends: number,
    windowMicros: number,
    notBeforeMicros: number,
    ...unused: Array<number>
  ): Promise<Array<number> | number>
}

/**
 * The send budget shared by every process on REDIS_URL: one window in Redis (an atomic script),
 * each process's own priorities on top; a process's more urgent sends hold back the others'
 * less urgent ones (the script refuses them sends meanwhile). Each chat's pace is kept by the
 * process writing to it and left in Redis for the next one. Redis away (or not answering within
 * 1 s): the process keeps a window alone at the same rate until it is back, trying Redis once a
 * second (with two processes, up to twice the rate: sends matter more).
 */
export const layer = Layer.effect(
  SendBudget,
  Effect.gen(function*() {
    const { telegramSendsPerSecond } = yield* AppConfig
    const { client } = yield* Redis
    client.defineCommand("botSendWindow", { numberOfKeys: 2, lua: windowScript })
    const scripted = client as WithWindowCommand
    const fallback = yield* memoryPace(telegramSendsPerSecond)
    const { window } = fallback
    const windowMicros = Math.round(window.millis * 1000)
    const holdMicros = Math.round(demandHoldSends * window.intervalMs * 1000)
    // This process, among those sharing the window.
    const processId = randomUUID()
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
      window,
      reserve: (count, rank, unused, notBeforeMs) =>
        viaRedis(
          () =>
            scripted.botSendWindow(
              windowKey,
              demandKey,
              "reserve",
              Math.round(gapMs(window, rank) * 1000),
              count,
              rank,
              holdMicros,
              processId,
              window.sends,
              windowMicros,
              Math.ceil(notBeforeMs * 1000),
              ...unused
            ).then((reply): Reservation => {
              // Held: the µs until a send may go; else Redis's now (µs), then the places.
              const [held, value, ...places] = reply as Array<number>
              return held === 1 ? { heldMs: value! / 1000 } : { inMs: places.map((at) => (at - value!) / 1000), places }
            }),
          // `unused` may mix places of both: each side frees only its own.
          fallback.reserve(count, rank, unused, notBeforeMs)
        ),
      pause: (millis) =>
        viaRedis(
          () => scripted.botSendWindow(windowKey, demandKey, "pause", Math.round(millis * 1000), 0, 0, 0, processId, window.sends, windowMicros, 0),
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
