import { assert, describe, it } from "@effect/vitest"
import { type Duration, Effect } from "effect"
import { TestClock } from "effect/testing"
import { aiRetrySchedule } from "../../../src/layers/llm/AiOpenAi.ts"
import { LlmError } from "../../../src/services/llm/Ai.ts"

/** A request failing with each of `errors` in turn, retried on aiRetrySchedule for `within` of virtual time. */
const retried = (errors: ReadonlyArray<LlmError>, within: Duration.Input) =>
  Effect.gen(function*() {
    let calls = 0
    const request = Effect.suspend(() => {
      const error = errors[calls++]
      return error ? Effect.fail(error) : Effect.succeed("streaming")
    })
    const fiber = yield* Effect.forkChild(Effect.retry(request, aiRetrySchedule))
    yield* TestClock.adjust(within)
    const exit = fiber.pollUnsafe()
    return { calls, done: exit !== undefined, succeeded: exit?._tag === "Success" }
  })

const status = (code: number, retryAfterSeconds?: number) =>
  new LlmError({ status: code, message: `HTTP ${code}`, ...(retryAfterSeconds !== undefined ? { retryAfterSeconds } : {}) })

describe("OpenAI retry schedule", () => {
  it.effect("429, 408, 5xx and network errors are retried four times, then given up", () =>
    Effect.gen(function*() {
      const four = [status(429), status(408), status(500), status(0)]
      assert.deepStrictEqual(yield* retried(four, "1 minute"), { calls: 5, done: true, succeeded: true })
      assert.deepStrictEqual(yield* retried([...four, status(503)], "1 minute"), { calls: 5, done: true, succeeded: false })
    }))

  it.effect("a Retry-After is waited, not less", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* retried([status(429, 20)], "19999 millis"), { calls: 1, done: false, succeeded: false })
      assert.deepStrictEqual(yield* retried([status(429, 20)], "20 seconds"), { calls: 2, done: true, succeeded: true })
    }))

  it.effect("a Retry-After over 60 s is cut to 60 s", () =>
    Effect.gen(function*() {
      assert.isTrue((yield* retried([status(429, 3600)], "60 seconds")).succeeded)
    }))

  it.effect("a bad key (401) or a bad request (400) is not retried", () =>
    Effect.gen(function*() {
      for (const code of [400, 401, 403, 404]) {
        assert.deepStrictEqual(yield* retried([status(code)], "1 minute"), { calls: 1, done: true, succeeded: false })
      }
    }))
})
