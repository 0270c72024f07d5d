/**
 * Contract tests for the coordination services (JobQueue, ChatLock, RateLimiter): the SAME tests
 * run against the Redis layers (BullMQ, Redis lease lock, Redis Lua limiter) and against the
 * in-process layers used by the single-process embedded mode. Real Redis (DB 2) and real time.
 */
import { Redis as IORedis } from "ioredis"
import { Context, Deferred, Duration, Effect, Exit, Fiber, Layer, Option, Redacted, Scope } from "effect"
import { TestClock } from "effect/testing"
import { afterAll, beforeEach, describe, expect, it } from "vitest"
import * as ChatLockMemory from "../../../src/layers/platform/ChatLockMemory.ts"
import * as ChatLockRedis from "../../../src/layers/platform/ChatLockRedis.ts"
import * as JobQueueBullMq from "../../../src/layers/platform/JobQueueBullMq.ts"
import * as JobQueueMemory from "../../../src/layers/platform/JobQueueMemory.ts"
import * as RateLimiterMemory from "../../../src/layers/platform/RateLimiterMemory.ts"
import * as RateLimiterRedis from "../../../src/layers/platform/RateLimiterRedis.ts"
import { ChatLock } from "../../../src/services/platform/ChatLock.ts"
import { type ChatWakeUp, JobQueue } from "../../../src/services/platform/JobQueue.ts"
import { type RateDecision, RateLimiter } from "../../../src/services/platform/RateLimiter.ts"
import { Redis } from "../../../src/services/platform/Redis.ts"

const redisUrl = "redis://127.0.0.1:6379/2"
/** The Redis lock's lease: short, so expiry and renewal show within a test. */
const leaseMillis = 1_000

type Services = JobQueue | ChatLock | RateLimiter

interface LayerSet {
  readonly name: "redis" | "memory"
  readonly layer: Layer.Layer<Services, unknown>
}

const layerSets: ReadonlyArray<LayerSet> = [
  {
    name: "redis",
    layer: Layer.mergeAll(
      JobQueueBullMq.layer,
      ChatLockRedis.layer(Duration.millis(leaseMillis)),
      RateLimiterRedis.layer
    ).pipe(Layer.provide(Redis.layer(Redacted.make(redisUrl))))
  },
  {
    name: "memory",
    layer: Layer.mergeAll(JobQueueMemory.layer, ChatLockMemory.layer, RateLimiterMemory.layer)
  }
]

const admin = new IORedis(redisUrl, { lazyConnect: false, maxRetriesPerRequest: 1 })
afterAll(async () => {
  await admin.quit()
})
beforeEach(async () => {
  await admin.flushdb()
})

/** Polls `condition` every 10 ms; fails (with `what`) after `timeoutMillis`. */
const waitUntil = (what: string, condition: () => boolean, timeoutMillis = 5_000) =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMillis
    while (!condition()) {
      if (Date.now() > deadline) return yield* Effect.die(new Error(`timed out after ${timeoutMillis} ms waiting for ${what}`))
      yield* Effect.sleep(Duration.millis(10))
    }
  })

const timed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const start = Date.now()
    const value = yield* effect
    return { value, millis: Date.now() - start }
  })

describe.each(layerSets)("coordination contract: $name", ({ layer, name }) => {
  const run = <A, E>(effect: Effect.Effect<A, E, Services | Scope.Scope>): Promise<A> =>
    Effect.runPromise(effect.pipe(Effect.scoped, Effect.provide(layer)) as Effect.Effect<A, unknown>)

  describe("JobQueue", () => {
    it("ping succeeds while the queue is open and fails with QueueOutage once it is closed", () =>
      Effect.runPromise(Effect.gen(function*() {
        const scope = yield* Scope.make()
        const context = yield* Layer.buildWithScope(layer, scope)
        const queue = Context.get(context, JobQueue)
        expect(Exit.isSuccess(yield* Effect.exit(queue.ping))).toBe(true)
        yield* Scope.close(scope, Exit.void)
        const error = yield* Effect.flip(queue.ping)
        expect(error._tag).toBe("QueueOutage")
        expect((yield* Effect.flip(queue.wake([1])))._tag).toBe("QueueOutage")
      })))

    it("delivers every woken chat id, with the time it was enqueued", () =>
      run(Effect.gen(function*() {
        const queue = yield* JobQueue
        const delivered: Array<ChatWakeUp> = []
        // Some wake-ups wait in the queue before anyone consumes, some arrive while consuming;
        // both the single-id and the bulk path.
        const before1 = Date.now()
        yield* queue.wake([101, 102, 103, 104, 105])
        yield* queue.wake([106])
        const after1 = Date.now()
        yield* queue.consume((wakeUp) => Effect.sync(() => delivered.push(wakeUp)), { concurrency: 4, graceMillis: 1_000 })
        const before2 = Date.now()
        yield* queue.wake([107])
        yield* queue.wake([108, 109, 110])
        const after2 = Date.now()
        yield* waitUntil("10 distinct chats", () => new Set(delivered.map((w) => w.chatId)).size === 10)

        expect([...new Set(delivered.map((w) => w.chatId))].sort((a, b) => a - b)).toEqual(
          [101, 102, 103, 104, 105, 106, 107, 108, 109, 110]
        )
        for (const wakeUp of delivered) {
          const [from, to] = wakeUp.chatId <= 106 ? [before1, after1] : [before2, after2]
          expect(wakeUp.enqueuedAt, `enqueuedAt of chat ${wakeUp.chatId}`).toBeGreaterThanOrEqual(from)
          expect(wakeUp.enqueuedAt, `enqueuedAt of chat ${wakeUp.chatId}`).toBeLessThanOrEqual(to)
        }
      })))

    it("never runs more than `concurrency` handlers at once, and does run that many", () =>
      run(Effect.gen(function*() {
        const queue = yield* JobQueue
        let inFlight = 0
        let maxInFlight = 0
        const done: Array<number> = []
        yield* queue.consume(
          (wakeUp) =>
            Effect.sync(() => {
              inFlight += 1
              maxInFlight = Math.max(maxInFlight, inFlight)
            }).pipe(
              Effect.andThen(Effect.sleep(Duration.millis(100))),
              Effect.andThen(Effect.sync(() => done.push(wakeUp.chatId))),
              Effect.ensuring(Effect.sync(() => {
                inFlight -= 1
              }))
            ),
          { concurrency: 3, graceMillis: 1_000 }
        )
        const chatIds = Array.from({ length: 20 }, (_, i) => 200 + i)
        yield* queue.wake(chatIds.slice(0, 10))
        for (const chatId of chatIds.slice(10)) yield* queue.wake([chatId])
        yield* waitUntil("20 handlers done", () => done.length >= 20, 10_000)

        expect(maxInFlight).toBe(3)
        expect([...done].sort((a, b) => a - b)).toEqual(chatIds)
      })))

    it("on close, lets in-flight handlers finish within the grace period and interrupts the rest", () =>
      run(Effect.gen(function*() {
        const queue = yield* JobQueue
        const graceMillis = 5_000
        const started = new Set<number>()
        const finished = new Set<number>()
        const interrupted = new Set<number>()
        const calls: Array<number> = []
        const scope = yield* Scope.make()
        yield* queue.consume(
          (wakeUp) =>
            Effect.sync(() => {
              calls.push(wakeUp.chatId)
              started.add(wakeUp.chatId)
            }).pipe(
              // 301 and 302 are quick enough for the grace period (302 takes 1.5 s: close waited
              // well past the first one, as long as graceMillis says); 305 is not.
              Effect.andThen(Effect.sleep(Duration.millis({ 301: 200, 302: 1_500 }[wakeUp.chatId] ?? 20_000))),
              Effect.andThen(Effect.sync(() => finished.add(wakeUp.chatId))),
              Effect.onInterrupt(() => Effect.sync(() => interrupted.add(wakeUp.chatId)))
            ),
          { concurrency: 3, graceMillis }
        ).pipe(Scope.provide(scope))
        yield* queue.wake([301, 302, 305])
        yield* waitUntil("the three handlers started", () => started.size === 3)
        // Waits for a free slot; 301 frees one during the grace period, but a closing consumer
        // takes no more work.
        yield* queue.wake([303])

        yield* Scope.close(scope, Exit.void)

        // It waited for the quick ones (in order), and did not wait 20 s for 305.
        expect([...finished]).toEqual([301, 302])
        expect([...interrupted]).toEqual([305])
        expect(calls).not.toContain(303)

        // A closed consumer takes no more work; what it did not take waits for the next one.
        const callsAtClose = calls.length
        yield* queue.wake([304])
        const next: Array<number> = []
        yield* queue.consume((wakeUp) => Effect.sync(() => next.push(wakeUp.chatId)), { concurrency: 2, graceMillis: 1_000 })
        yield* waitUntil("303 and 304 delivered to the next consumer", () => next.includes(303) && next.includes(304))
        expect(calls.length).toBe(callsAtClose)
      })))

    it("closes without waiting out the grace period when no handler is running", () =>
      run(Effect.gen(function*() {
        const queue = yield* JobQueue
        const scope = yield* Scope.make()
        const delivered: Array<number> = []
        const graceMillis = 60_000
        yield* queue.consume((wakeUp) => Effect.sync(() => delivered.push(wakeUp.chatId)), {
          concurrency: 2,
          graceMillis
        }).pipe(Scope.provide(scope))
        yield* queue.wake([351])
        yield* waitUntil("chat 351 delivered", () => delivered.length === 1)
        const { millis } = yield* timed(Scope.close(scope, Exit.void))
        expect(delivered).toEqual([351])
        // Far below the minute of grace (it takes milliseconds), so no load makes this flake.
        expect(millis).toBeLessThan(graceMillis / 4)
      })), 30_000)

    it("delivers a wake-up again after its handler fails or dies", () =>
      run(Effect.gen(function*() {
        const queue = yield* JobQueue
        const attempts: Array<ChatWakeUp & { readonly at: number }> = []
        yield* queue.consume(
          (wakeUp) =>
            Effect.suspend(() => {
              attempts.push({ ...wakeUp, at: Date.now() })
              const mine = attempts.filter((a) => a.chatId === wakeUp.chatId).length
              if (mine > 1 || wakeUp.chatId === 403) return Effect.void
              return wakeUp.chatId === 401
                ? Effect.fail(new Error("database away"))
                : Effect.die(new Error("handler bug"))
            }),
          { concurrency: 2, graceMillis: 1_000 }
        )
        yield* queue.wake([401, 402])
        const twice = (chatId: number) => attempts.filter((a) => a.chatId === chatId)
        yield* waitUntil("chats 401 and 402 delivered twice", () => twice(401).length >= 2 && twice(402).length >= 2, 6_000)

        for (const chatId of [401, 402]) {
          const [first, second] = twice(chatId)
          expect(first?.chatId).toBe(chatId)
          expect(second?.chatId).toBe(chatId)
          // Same wake-up, delivered again: its enqueuedAt is the original one.
          expect(second?.enqueuedAt).toBe(first?.enqueuedAt)
          // Both layers wait a second before the retry. A lower bound measured from the first
          // attempt, which precedes the retry's timer: load can only lengthen it.
          expect((second?.at ?? 0) - (first?.at ?? 0)).toBeGreaterThanOrEqual(990)
        }
        // A retry that succeeded is not delivered once more: by the time a later wake-up is
        // handled, a third delivery (due at once) would have come.
        yield* queue.wake([403])
        yield* waitUntil("the later chat 403 delivered", () => attempts.some((a) => a.chatId === 403))
        expect(twice(401)).toHaveLength(2)
        expect(twice(402)).toHaveLength(2)
      })), 15_000)

    it("delivers a wake-up interrupted at shutdown to the next consumer", () =>
      run(Effect.gen(function*() {
        const queue = yield* JobQueue
        const seen: Array<string> = []
        const first = yield* Scope.make()
        yield* queue.consume(
          (w) => Effect.sync(() => seen.push(`first:${w.chatId}`)).pipe(Effect.andThen(Effect.never)),
          { concurrency: 1, graceMillis: 100 }
        ).pipe(Scope.provide(first))
        yield* queue.wake([501])
        yield* waitUntil("first got 501", () => seen.length === 1)
        yield* Scope.close(first, Exit.void)
        yield* queue.consume((w) => Effect.sync(() => seen.push(`second:${w.chatId}`)), { concurrency: 1, graceMillis: 100 })
        yield* waitUntil("501 delivered again", () => seen.includes("second:501"), 4_000)
        expect(seen).toEqual(["first:501", "second:501"])
      })), 10_000)

    it("does not hold a concurrency slot while a failed wake-up waits for its retry", () =>
      run(Effect.gen(function*() {
        const queue = yield* JobQueue
        const seen: Array<number> = []
        let failedOnce = false
        yield* queue.consume((w) =>
          Effect.suspend(() => {
            seen.push(w.chatId)
            if (w.chatId === 601 && !failedOnce) {
              failedOnce = true
              return Effect.fail("database away")
            }
            return Effect.void
          }), { concurrency: 1, graceMillis: 100 })
        yield* queue.wake([601])
        yield* waitUntil("601 tried", () => seen.length === 1)
        yield* queue.wake([602])
        yield* waitUntil("601 retried", () => seen.filter((id) => id === 601).length === 2, 5_000)
        // With its only slot held by 601's retry wait, 602 would come after the retry.
        expect(seen).toEqual([601, 602, 601])
      })), 10_000)
  })

  describe("ChatLock", () => {
    it("withLock runs the effect and returns Some(result)", () =>
      run(Effect.gen(function*() {
        const lock = yield* ChatLock
        let runs = 0
        const result = yield* lock.withLock(1, Effect.sync(() => ++runs * 42))
        expect(Option.isSome(result)).toBe(true)
        expect(Option.getOrUndefined(result)).toBe(42)
        expect(runs).toBe(1)
      })))

    it("held names the chats that have a holder now, and only while it holds them", () =>
      run(Effect.gen(function*() {
        const lock = yield* ChatLock
        const entered = yield* Deferred.make<void>()
        const release = yield* Deferred.make<void>()
        expect(yield* lock.held([])).toEqual(new Set())
        const holder = yield* Effect.forkChild(lock.withLock(21, Deferred.succeed(entered, undefined).pipe(Effect.andThen(Deferred.await(release)))))
        yield* Deferred.await(entered)
        expect(yield* lock.held([21, 22])).toEqual(new Set([21]))
        yield* Deferred.succeed(release, undefined)
        yield* Fiber.join(holder)
        expect(yield* lock.held([21, 22])).toEqual(new Set())
      })))

    it("a second holder of the same chat gets None without running its effect; other chats are free", () =>
      run(Effect.gen(function*() {
        const lock = yield* ChatLock
        const entered = yield* Deferred.make<void>()
        const leave = yield* Deferred.make<void>()
        const first = yield* Effect.forkChild(
          lock.withLock(2, Deferred.succeed(entered, undefined).pipe(Effect.andThen(Deferred.await(leave)), Effect.as("first")))
        )
        yield* Deferred.await(entered)

        let secondRan = false
        const second = yield* lock.withLock(2, Effect.sync(() => {
          secondRan = true
          return "second"
        }))
        expect(Option.isNone(second)).toBe(true)
        expect(secondRan).toBe(false)

        const other = yield* lock.withLock(3, Effect.succeed("other chat"))
        expect(Option.getOrUndefined(other)).toBe("other chat")

        yield* Deferred.succeed(leave, undefined)
        const firstResult = yield* Fiber.join(first)
        expect(Option.getOrUndefined(firstResult)).toBe("first")
      })))

    it("releases the lock after success, failure and interruption", () =>
      run(Effect.gen(function*() {
        const lock = yield* ChatLock
        // Each re-acquisition happens right away, well within the Redis lease: the lock was
        // released, not left to expire.
        const ok = yield* lock.withLock(4, Effect.succeed(1))
        expect(Option.getOrUndefined(ok)).toBe(1)
        const again = yield* lock.withLock(4, Effect.succeed(2))
        expect(Option.getOrUndefined(again)).toBe(2)

        const error = yield* Effect.flip(lock.withLock(4, Effect.fail("boom" as const)))
        expect(error).toBe("boom")
        const afterFailure = yield* lock.withLock(4, Effect.succeed(3))
        expect(Option.getOrUndefined(afterFailure)).toBe(3)

        const defect = yield* Effect.exit(lock.withLock(4, Effect.die(new Error("bug"))))
        expect(Exit.hasDies(defect)).toBe(true)
        const afterDefect = yield* lock.withLock(4, Effect.succeed(4))
        expect(Option.getOrUndefined(afterDefect)).toBe(4)

        const entered = yield* Deferred.make<void>()
        let interrupted = false
        const holder = yield* Effect.forkChild(
          lock.withLock(
            4,
            Deferred.succeed(entered, undefined).pipe(
              Effect.andThen(Effect.never),
              Effect.onInterrupt(() => Effect.sync(() => {
                interrupted = true
              }))
            )
          )
        )
        yield* Deferred.await(entered)
        const whileHeld = yield* lock.withLock(4, Effect.succeed("no"))
        expect(Option.isNone(whileHeld)).toBe(true)
        yield* Fiber.interrupt(holder)
        expect(interrupted).toBe(true)
        const afterInterrupt = yield* lock.withLock(4, Effect.succeed(5))
        expect(Option.getOrUndefined(afterInterrupt)).toBe(5)
      })))

    it.runIf(name === "redis")("(redis) a holder that outlives the lease keeps the lock by renewing it", () =>
      run(Effect.gen(function*() {
        const lock = yield* ChatLock
        const holdMillis = leaseMillis * 2.5
        const holder = yield* Effect.forkChild(
          timed(lock.withLock(5, Effect.sleep(Duration.millis(holdMillis)).pipe(Effect.as("held"))))
        )
        const checks: Array<{ readonly contender: boolean; readonly pttl: number }> = []
        for (let i = 0; i < 2; i++) {
          yield* Effect.sleep(Duration.millis(leaseMillis))
          const contender = yield* lock.withLock(5, Effect.succeed("stolen"))
          const pttl = yield* Effect.promise(() => admin.pttl("bot:chat-lock:5"))
          checks.push({ contender: Option.isSome(contender), pttl })
        }
        const { value } = yield* Fiber.join(holder)
        expect(Option.getOrUndefined(value)).toBe("held")
        for (const check of checks) {
          expect(check.contender).toBe(false)
          expect(check.pttl).toBeGreaterThan(0)
          expect(check.pttl).toBeLessThanOrEqual(leaseMillis)
        }
        // Released on success: the key is gone, not left to expire.
        expect(yield* Effect.promise(() => admin.exists("bot:chat-lock:5"))).toBe(0)
      })))

    it.runIf(name === "redis")("(redis) a lock left by a dead holder can be taken once its lease passes", () =>
      run(Effect.gen(function*() {
        const lock = yield* ChatLock
        yield* Effect.promise(() => admin.set("bot:chat-lock:6", "dead-holder-token", "PX", leaseMillis))
        let ran = false
        const early = yield* lock.withLock(6, Effect.sync(() => {
          ran = true
        }))
        expect(Option.isNone(early)).toBe(true)
        expect(ran).toBe(false)

        yield* Effect.sleep(Duration.millis(leaseMillis + 100))
        const late = yield* lock.withLock(6, Effect.succeed("taken over"))
        expect(Option.getOrUndefined(late)).toBe("taken over")
        expect(yield* Effect.promise(() => admin.exists("bot:chat-lock:6"))).toBe(0)
      })))

    it.runIf(name === "redis")("(redis) a holder that lost its lease stops, and leaves the new holder's lock alone", () =>
      run(Effect.gen(function*() {
        const lock = yield* ChatLock
        const entered = yield* Deferred.make<void>()
        let interrupted = false
        const holder = yield* Effect.forkChild(
          timed(Effect.flip(lock.withLock(
            7,
            Deferred.succeed(entered, undefined).pipe(
              Effect.andThen(Effect.sleep(Duration.seconds(5))),
              Effect.onInterrupt(() => Effect.sync(() => {
                interrupted = true
              }))
            )
          )))
        )
        yield* Deferred.await(entered)
        // Another worker got the lock (say, after a long GC pause of this one).
        yield* Effect.promise(() => admin.set("bot:chat-lock:7", "new-holder-token", "PX", 10_000))
        // It stops at its next renewal instead of sleeping its 5 s out.
        const { value: error } = yield* Fiber.join(holder)
        expect(error).toMatchObject({ _tag: "LostLock", message: "lost the lock of chat 7" })
        expect(interrupted).toBe(true)
        expect(yield* Effect.promise(() => admin.get("bot:chat-lock:7"))).toBe("new-holder-token")
      })))
  })

  describe("RateLimiter", () => {
    // Virtual time (TestClock), set to exact phases of the production window: both layers take
    // "now" from the Clock, so the boundaries are hit exactly, however busy the machine is.
    const windowMillis = 60_000
    const window = Duration.millis(windowMillis)
    const at = (windows: number) => TestClock.setTime(Math.round(windowMillis * (1_000 + windows)))
    const counted = (d: RateDecision) => ({ allowed: d.allowed, count: d.count })
    const consumeMany = (keys: ReadonlyArray<string>, limit: number) =>
      RateLimiter.use((limiter) => limiter.consumeMany(keys.map((key) => ({ key, limit })), window)).pipe(
        Effect.map((decisions) => decisions.map(counted))
      )
    const consume = (key: string, limit: number) => consumeMany([key], limit).pipe(Effect.map((decisions) => decisions[0]!))
    const runVirtual = <A, E>(effect: Effect.Effect<A, E, Services | Scope.Scope>) =>
      run(effect.pipe(Effect.provide(TestClock.layer())))

    it("decides a batch of keys in one call, in order, counting a repeated key each time", () =>
      runVirtual(Effect.gen(function*() {
        yield* at(0.05)
        const decisions = yield* consumeMany(["user:m", "user:n", "user:m", "user:m", "user:n"], 2)
        expect(decisions).toEqual([
          { allowed: true, count: 1 },
          { allowed: true, count: 1 },
          { allowed: true, count: 2 },
          { allowed: false, count: 2 },
          { allowed: true, count: 2 }
        ])
        expect(yield* consumeMany([], 2)).toEqual([])
        expect(yield* consume("user:n", 2)).toEqual({ allowed: false, count: 2 })
      })))

    it("allows the first N calls in a window and refuses the next; keys are independent", () =>
      runVirtual(Effect.gen(function*() {
        yield* at(0.05)
        const decisions = []
        for (let i = 0; i < 5; i++) decisions.push(yield* consume("user:a", 3))
        const other = yield* consume("user:b", 3)
        const otherLimit = yield* consume("user:c", 1)
        const otherLimitAgain = yield* consume("user:c", 1)

        expect(decisions).toEqual([
          { allowed: true, count: 1 },
          { allowed: true, count: 2 },
          { allowed: true, count: 3 },
          { allowed: false, count: 3 },
          { allowed: false, count: 3 }
        ])
        expect(other).toEqual({ allowed: true, count: 1 })
        expect(otherLimit).toEqual({ allowed: true, count: 1 })
        expect(otherLimitAgain).toEqual({ allowed: false, count: 1 })
      })))

    it("weighs the previous window while it still overlaps, and forgets it after that", () =>
      runVirtual(Effect.gen(function*() {
        yield* at(0.05)
        for (let i = 0; i < 3; i++) expect((yield* consume("user:d", 3)).allowed).toBe(true)
        // Later in the same window: still refused.
        yield* at(0.7)
        expect(yield* consume("user:d", 3)).toEqual({ allowed: false, count: 3 })

        // Halfway into the next window the previous 3 still weigh 1.5: 1 more call fits.
        yield* at(1.5)
        const halfway = []
        for (let i = 0; i < 3; i++) halfway.push(yield* consume("user:d", 3))
        expect(halfway).toEqual([
          { allowed: true, count: 2 },
          { allowed: true, count: 3 },
          { allowed: false, count: 3 }
        ])

        // Two windows after the last calls, nothing overlaps any more.
        yield* at(3.05)
        const fresh = []
        for (let i = 0; i < 4; i++) fresh.push(yield* consume("user:d", 3))
        expect(fresh).toEqual([
          { allowed: true, count: 1 },
          { allowed: true, count: 2 },
          { allowed: true, count: 3 },
          { allowed: false, count: 3 }
        ])
      })))

    it("takes each key's own limit in one batch, and says when a refused key frees up", () =>
      runVirtual(Effect.gen(function*() {
        yield* at(0.25)
        const limiter = yield* RateLimiter
        const decisions = yield* limiter.consumeMany(
          [{ key: "user:f", limit: 1 }, { key: "user:g", limit: 2 }, { key: "user:f", limit: 1 }, { key: "user:g", limit: 2 }],
          window
        )
        expect(decisions.map((d) => d.allowed)).toEqual([true, true, false, true])
        // user:f's one call weighs 1 until the next window starts, then fades: below 1 right
        // after that start, so it frees up 45 s (plus a millisecond) from now.
        expect(decisions[2]!.retryAfterMillis).toBe(windowMillis * 0.75 + 1)
        expect(decisions.filter((d) => d.allowed).map((d) => d.retryAfterMillis)).toEqual([0, 0, 0])
        yield* TestClock.adjust(decisions[2]!.retryAfterMillis - 1)
        expect((yield* consume("user:f", 1)).allowed).toBe(false)
        yield* TestClock.adjust(1)
        expect((yield* consume("user:f", 1)).allowed).toBe(true)
      })))

    it("a refusal inside the window frees up as the previous window's weight fades", () =>
      runVirtual(Effect.gen(function*() {
        yield* at(0.5)
        for (let i = 0; i < 4; i++) yield* consume("user:h", 4)
        // 4 from the last window weigh 4 * (1 - t) at t into this one: below a limit of 3 past
        // t = 0.25, which is 9 s (plus a millisecond) after t = 0.1.
        yield* at(1.1)
        const limiter = yield* RateLimiter
        const [refused] = yield* limiter.consumeMany([{ key: "user:h", limit: 3 }], window)
        expect(refused!.allowed).toBe(false)
        expect(refused!.retryAfterMillis).toBe(9_001)
        yield* TestClock.adjust(refused!.retryAfterMillis - 1)
        expect((yield* consume("user:h", 3)).allowed).toBe(false)
        yield* TestClock.adjust(1)
        expect((yield* consume("user:h", 3)).allowed).toBe(true)
      })))

    it("refuses at exactly the limit: N - 1 weighted calls leave room for one, N leave none", () =>
      runVirtual(Effect.gen(function*() {
        // 4 calls at the very end of a window weigh 4 * 0.25 = 1 a quarter of the way into the
        // next: with a limit of 2, exactly one more call fits, and then none.
        yield* at(0.99)
        for (let i = 0; i < 2; i++) expect((yield* consume("user:e", 4)).allowed).toBe(true)
        yield* at(0.995)
        for (let i = 0; i < 2; i++) expect((yield* consume("user:e", 4)).allowed).toBe(true)
        yield* at(1.75)
        expect(yield* consume("user:e", 2)).toEqual({ allowed: true, count: 2 })
        expect(yield* consume("user:e", 2)).toEqual({ allowed: false, count: 2 })
      })))
  })
})
