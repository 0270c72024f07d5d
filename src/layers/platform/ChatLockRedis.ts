import type { Redis as IORedis } from "ioredis"
import { randomUUID } from "node:crypto"
import { Clock, Duration, Effect, Layer, Option } from "effect"
import { ChatLock, LostLock } from "../../services/platform/ChatLock.ts"
import { Redis, redisCall } from "../../services/platform/Redis.ts"

type WithLockCommands = IORedis & {
  botLockRenew(key: string, token: string, leaseMs: number): Promise<number>
  botLockRelease(key: string, token: string): Promise<number>
}

const key = (chatId: number) => `bot:chat-lock:${chatId}`

/**
 * A Redis key per chat holding the holder's token, with a lease (TURN_LEASE_SECONDS) renewed
 * every third of it while held; a crashed holder's lease runs out and the chat is free again.
 */
export const layer = (lease: Duration.Duration) =>
  Layer.effect(
    ChatLock,
    Effect.gen(function*() {
      const { client } = yield* Redis
      // Compare-and-act scripts, sent by hash once loaded, so a holder whose lease ran out never
      // touches the next one's lock.
      client.defineCommand("botLockRenew", {
        numberOfKeys: 1,
        lua: "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"
      })
      client.defineCommand("botLockRelease", {
        numberOfKeys: 1,
        lua: "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"
      })
      const scripted = client as WithLockCommands
      const leaseMs = Duration.toMillis(lease)
      const renewEvery = Duration.millis(Math.max(50, Math.floor(leaseMs / 3)))

      const acquire = (chatId: number, token: string) =>
        redisCall(() => client.set(key(chatId), token, "PX", leaseMs, "NX")).pipe(Effect.map((ok) => ok === "OK"))
      const renew = (chatId: number, token: string) =>
        redisCall(() => scripted.botLockRenew(key(chatId), token, leaseMs)).pipe(
          Effect.flatMap((renewed) =>
            renewed === 1 ? Effect.void : Effect.fail(new LostLock({ message: `lost the lock of chat ${chatId}` }))
          )
        )
      /**
       * Renews every third of the lease. A renewal that fails or hangs (Redis blip) is tried
       * again next time; once renewals have failed for most of a lease, the holder stops
       * before the key can expire and pass to another worker. Another holder's token: stop now.
       */
      const keepAlive = (chatId: number, token: string) =>
        Effect.gen(function*() {
          let renewedAt = yield* Clock.currentTimeMillis
          for (;;) {
            yield* Effect.sleep(renewEvery)
            const failure = yield* renew(chatId, token).pipe(
              Effect.timeout(renewEvery),
              Effect.as(Option.none<unknown>()),
              Effect.catchTag(["RedisOutage", "TimeoutError"], (error) => Effect.succeed(Option.some<unknown>(error)))
            )
            const now = yield* Clock.currentTimeMillis
            if (Option.isNone(failure)) renewedAt = now
            else if (now - renewedAt >= leaseMs - Duration.toMillis(renewEvery)) {
              return yield* new LostLock({
                message: `could not renew the lock of chat ${chatId} within its lease`,
                cause: failure.value
              })
            }
          }
        })
      const release = (chatId: number, token: string) =>
        redisCall(() => scripted.botLockRelease(key(chatId), token)).pipe(Effect.ignore)

      return ChatLock.of({
        held: Effect.fn("ChatLock.held")(function*(chatIds: ReadonlyArray<number>) {
          if (chatIds.length === 0) return new Set<number>()
          const tokens = yield* redisCall(() => client.mget(chatIds.map(key)))
          return new Set(chatIds.filter((_, i) => tokens[i] !== null))
        }),
        withLock: Effect.fn("ChatLock.withLock")(function*<A, E, R>(chatId: number, effect: Effect.Effect<A, E, R>) {
          const token = randomUUID()
          if (!(yield* acquire(chatId, token))) return Option.none<A>()
          // If the lock is lost the lease may pass to another worker: stop this turn rather
          // than risk two holders.
          const result = yield* Effect.raceFirst(effect, keepAlive(chatId, token)).pipe(
            Effect.ensuring(release(chatId, token))
          )
          return Option.some(result)
        })
      })
    })
  )
