import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Deferred, Effect, Fiber, Layer, Stream } from "effect"
import { TestClock } from "effect/testing"
import OpenAI from "openai"
import * as AiOpenAi from "../../../src/layers/llm/AiOpenAi.ts"
import { aiRetrySchedule, retryAfterSeconds, toLlmError } from "../../../src/layers/llm/AiOpenAi.ts"
import { Ai, LlmError } from "../../../src/services/llm/Ai.ts"
import { AppConfig } from "../../../src/services/platform/AppConfig.ts"
import { startFakeOpenAI } from "../../support/FakeOpenAI.ts"
import { retried } from "../../support/retried.ts"

const status = (code: number, retryAfterSeconds?: number) =>
  new LlmError({ status: code, message: `HTTP ${code}`, ...(retryAfterSeconds !== undefined ? { retryAfterSeconds } : {}) })

describe("OpenAI retry schedule", () => {
  it.effect("429, 408, 5xx and network errors are retried four times, then given up", () =>
    Effect.gen(function*() {
      const four = [status(429), status(408), status(500), status(0)]
      assert.deepStrictEqual(yield* retried(aiRetrySchedule, four, "1 minute"), { calls: 5, done: true, succeeded: true })
      assert.deepStrictEqual(yield* retried(aiRetrySchedule, [...four, status(503)], "1 minute"), {
        calls: 5,
        done: true,
        succeeded: false
      })
    }))

  it.effect("a Retry-After is waited, not less", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* retried(aiRetrySchedule, [status(429, 20)], "19999 millis"), { calls: 1, done: false, succeeded: false })
      assert.deepStrictEqual(yield* retried(aiRetrySchedule, [status(429, 20)], "20 seconds"), { calls: 2, done: true, succeeded: true })
    }))

  it.effect("a Retry-After over 60 s is cut to 60 s", () =>
    Effect.gen(function*() {
      assert.isFalse((yield* retried(aiRetrySchedule, [status(429, 3600)], "59999 millis")).done)
      assert.isTrue((yield* retried(aiRetrySchedule, [status(429, 3600)], "60 seconds")).succeeded)
    }))

  it.effect("a bad key (401) or a bad request (400) is not retried", () =>
    Effect.gen(function*() {
      for (const code of [400, 401, 403, 404]) {
        assert.deepStrictEqual(yield* retried(aiRetrySchedule, [status(code)], "1 minute"), { calls: 1, done: true, succeeded: false })
      }
    }))
})

describe("OpenAI errors", () => {
  const now = Date.parse("2026-11-29T12:00:00Z")

  it("reads Retry-After as seconds or as an HTTP date", () => {
    assert.strictEqual(retryAfterSeconds(new Headers({ "retry-after": "7" }), now), 7)
    assert.strictEqual(retryAfterSeconds(new Headers({ "retry-after": "Sun, 29 Nov 2026 12:00:30 GMT" }), now), 30)
    assert.strictEqual(retryAfterSeconds(new Headers({ "retry-after": "Sun, 29 Nov 2026 11:59:00 GMT" }), now), 0)
    assert.isUndefined(retryAfterSeconds(new Headers({ "retry-after": "soon" }), now))
    assert.isUndefined(retryAfterSeconds(new Headers(), now))
  })

  it("keeps the status, Retry-After and error code of the SDK's error, never the server's words", () => {
    const apiKey = "sk-live-0123456789abcdef"
    const cause = OpenAI.APIError.generate(
      429,
      { error: { message: `Rate limited for key sk-live-01*********cdef (also ${apiKey})`, code: "rate_limit_exceeded" } },
      undefined,
      new Headers({ "retry-after": "12" })
    )
    const error = toLlmError(apiKey, now)(cause)
    assert.strictEqual(error.status, 429)
    assert.strictEqual(error.retryAfterSeconds, 12)
    assert.strictEqual(error.message, "429 rate_limit_exceeded: the LLM provider is rate limiting this key or its quota is used up")
    // An error code that is not an identifier (a server may put anything there) is left out.
    const odd = toLlmError(apiKey, now)(OpenAI.APIError.generate(401, { error: { code: `bad key ${apiKey}` } }, undefined, new Headers()))
    assert.strictEqual(odd.message, "401: the LLM server refused the API key (OPENAI_API_KEY)")
  })

  it("keeps none of the words of an error sent inside the stream", () => {
    const apiKey = "sk-live-0123456789abcdef"
    const cause = new OpenAI.APIError(undefined, { code: "server_error" }, `overloaded, key sk-live-01****cdef`, undefined)
    const error = toLlmError(apiKey, now)(cause)
    assert.deepStrictEqual({ status: error.status, message: error.message }, {
      status: 0,
      message: "server_error: the LLM server sent an error in the stream"
    })
  })

  it("reports a network failure as status 0, without a Retry-After", () => {
    const error = toLlmError("sk-x", now)(new TypeError("fetch failed"))
    assert.deepStrictEqual({ status: error.status, retryAfterSeconds: error.retryAfterSeconds, message: error.message }, {
      status: 0,
      retryAfterSeconds: undefined,
      message: "fetch failed"
    })
  })
})

describe("OpenAI stream", () => {
  it.effect("a stream quiet for 60 s is aborted as stalled, not before", () =>
    Effect.gen(function*() {
      const fake = yield* Effect.acquireRelease(Effect.promise(() => startFakeOpenAI()), (fake) => Effect.promise(() => fake.close()))
      // A first chunk, then the next one 10 minutes later (real time): the stream stalls.
      fake.setReply(() => ({ text: "Hello there", chunkSize: 6, chunkDelayMs: 600_000 }))
      const ai = yield* Effect.provide(
        Effect.gen(function*() {
          return yield* Ai
        }),
        AiOpenAi.layer.pipe(Layer.provide(AppConfig.layer), Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({
          TELEGRAM_BOT_TOKEN: "1:t",
          OPENAI_API_KEY: "sk-test",
          OPENAI_BASE_URL: `${fake.url}/v1`
        }))))
      )
      const firstChunk = yield* Deferred.make<void>()
      const streaming = yield* ai.streamChat([{ role: "user", content: "hi" }], { maxTokens: 50 }).pipe(
        Stream.runForEach(() => Deferred.succeed(firstChunk, undefined)),
        Effect.flip,
        Effect.forkChild
      )
      yield* Deferred.await(firstChunk)
      yield* TestClock.adjust("59 seconds")
      assert.isUndefined(streaming.pollUnsafe(), "59 s of quiet is not a stall")
      yield* TestClock.adjust("1 second")
      const error = yield* Fiber.join(streaming)
      assert.deepStrictEqual({ status: error.status, message: error.message }, { status: 0, message: "the LLM stream stalled" })
      // The request was cut off: the server sees the client go.
      yield* Effect.promise(() => waitUntil(() => fake.requests[0]?.aborted === true))
    }).pipe(Effect.scoped))
})

const waitUntil = async (predicate: () => boolean) => {
  for (let i = 0; i < 100 && !predicate(); i++) await new Promise((resolve) => setTimeout(resolve, 20))
  if (!predicate()) throw new Error("the condition did not hold within 2 s")
}
