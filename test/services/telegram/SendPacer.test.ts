import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import { SendPacer, sendsPerSecond } from "../../../src/services/telegram/SendPacer.ts"
import { maxWaitSeconds } from "../../../src/services/telegram/Telegram.ts"

/** Each test on a pacer of its own: no send slot or flood wait carries over. */
const fresh = <A, E>(body: Effect.Effect<A, E, SendPacer>) => Effect.provide(body, SendPacer.layer)

/** When (TestClock ms) each of `count` calls of `method` got its turn, all started at once. */
const turnTimes = (method: string, count: number, chatId?: number) =>
  Effect.gen(function*() {
    const pacer = yield* SendPacer
    const times: Array<number> = []
    const fiber = yield* Effect.forkChild(Effect.forEach(
      Array.from({ length: count }),
      () => pacer.awaitTurn(method, chatId).pipe(Effect.andThen(Clock.currentTimeMillis), Effect.map((t) => times.push(t))),
      { concurrency: "unbounded", discard: true }
    ))
    yield* TestClock.adjust("10 seconds")
    yield* Fiber.join(fiber)
    return times
  })

describe("SendPacer", () => {
  it.effect("spaces sends, edits and drafts 1/30 s apart across all chats", () =>
    fresh(Effect.gen(function*() {
      const start = yield* Clock.currentTimeMillis
      const times = yield* turnTimes("sendMessage", 31)
      assert.strictEqual(times.length, 31)
      for (let i = 1; i < times.length; i++) assert.isAtLeast(times[i]! - times[i - 1]!, 1000 / sendsPerSecond - 1e-3)
      // The 31st send is a full second after the first (less float rounding): 30 a second, not 31.
      assert.isAtLeast(times[30]! - times[0]!, 1000 - 1e-3)
      assert.strictEqual(times[0], start)
    })))

  it.effect("does not pace calls that send nothing (typing, webhook calls)", () =>
    fresh(Effect.gen(function*() {
      const start = yield* Clock.currentTimeMillis
      const times = yield* turnTimes("sendChatAction", 50, 7)
      assert.deepStrictEqual(new Set(times), new Set([start]))
    })))

  it.effect(`reports congestion once ${sendsPerSecond} sends wait (a second of them), not at ${sendsPerSecond - 1}`, () =>
    fresh(Effect.gen(function*() {
      const pacer = yield* SendPacer
      // The first of a burst goes at once; the others wait for their slot.
      const burst = (size: number) =>
        Effect.forkChild(Effect.forEach(Array.from({ length: size }), () => pacer.awaitTurn("editMessageText", undefined), {
          concurrency: "unbounded",
          discard: true
        }))
      const below = yield* burst(sendsPerSecond)
      yield* Effect.yieldNow
      assert.isFalse(yield* pacer.congested)
      const more = yield* burst(1)
      yield* Effect.yieldNow
      assert.isTrue(yield* pacer.congested)
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(below)
      yield* Fiber.join(more)
      assert.isFalse(yield* pacer.congested)
    })))

  it.effect("sits out a chat's flood wait, then forgets it", () =>
    fresh(Effect.gen(function*() {
      const pacer = yield* SendPacer
      yield* pacer.rememberFloodWait(100, 5)
      assert.strictEqual(yield* pacer.floodWaitSeconds(100), 5)
      assert.strictEqual(yield* pacer.floodWaitSeconds(101), 0) // other chats are free
      const waiting = yield* Effect.forkChild(pacer.awaitTurn("sendMessage", 100))
      yield* TestClock.adjust("4999 millis")
      assert.isUndefined(waiting.pollUnsafe())
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(waiting)
      assert.strictEqual(yield* pacer.floodWaitSeconds(100), 0)
    })))

  it.effect(`sits out exactly ${maxWaitSeconds} s, and fails at once with a 429 past that`, () =>
    fresh(Effect.gen(function*() {
      const pacer = yield* SendPacer
      yield* pacer.rememberFloodWait(200, maxWaitSeconds + 1)
      const error = yield* Effect.flip(pacer.awaitTurn("sendMessage", 200))
      assert.strictEqual(error.code, 429)
      assert.strictEqual(error.retryAfterSeconds, maxWaitSeconds + 1)

      yield* pacer.rememberFloodWait(201, maxWaitSeconds)
      const waiting = yield* Effect.forkChild(pacer.awaitTurn("sendMessage", 201))
      yield* TestClock.adjust(`${maxWaitSeconds} seconds`)
      yield* Fiber.join(waiting)
    })))
})
