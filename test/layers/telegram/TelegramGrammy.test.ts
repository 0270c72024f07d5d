import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { telegramRetrySchedule, telegramSendRetrySchedule } from "../../../src/layers/telegram/TelegramGrammy.ts"
import { TelegramApiError, UnreachableChat } from "../../../src/services/telegram/Telegram.ts"
import { retried } from "../../support/retried.ts"

const api = (code: number, retryAfterSeconds?: number) =>
  new TelegramApiError({ method: "sendMessage", code, message: `error ${code}`, ...(retryAfterSeconds ? { retryAfterSeconds } : {}) })

describe("Telegram retry schedules", () => {
  it.effect("a 429 waits its retry_after, not less", () =>
    Effect.gen(function*() {
      const early = yield* retried(telegramRetrySchedule, [api(429, 3)], "2999 millis")
      assert.deepStrictEqual(early, { calls: 1, done: false, succeeded: false })
      const onTime = yield* retried(telegramRetrySchedule, [api(429, 3)], "3 seconds")
      assert.deepStrictEqual(onTime, { calls: 2, done: true, succeeded: true })
    }))

  it.effect("a retry_after of 30 s is waited; 31 s is not, the call fails at once", () =>
    Effect.gen(function*() {
      assert.isTrue((yield* retried(telegramRetrySchedule, [api(429, 30)], "30 seconds")).succeeded)
      assert.deepStrictEqual(yield* retried(telegramRetrySchedule, [api(429, 31)], "0 millis"), {
        calls: 1,
        done: true,
        succeeded: false
      })
    }))

  it.effect("5xx and network errors are retried five times, then given up", () =>
    Effect.gen(function*() {
      const fiveFailures = [api(502), api(0), api(500), api(503), api(502)]
      assert.isTrue((yield* retried(telegramRetrySchedule, fiveFailures, "1 minute")).succeeded)
      const sixFailures = [...fiveFailures, api(502)]
      assert.deepStrictEqual(yield* retried(telegramRetrySchedule, sixFailures, "1 minute"), {
        calls: 6,
        done: true,
        succeeded: false
      })
    }))

  it.effect("other 4xx and an unreachable chat are never retried", () =>
    Effect.gen(function*() {
      for (const error of [api(400), api(401), new UnreachableChat({ chatId: 1, message: "Forbidden: bot was blocked by the user" })]) {
        assert.deepStrictEqual(yield* retried(telegramRetrySchedule, [error], "1 minute"), { calls: 1, done: true, succeeded: false })
      }
    }))

  it.effect("sendMessage is not retried after a network error or timeout (it may have gone out), but is after a 5xx", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* retried(telegramSendRetrySchedule, [api(0)], "1 minute"), { calls: 1, done: true, succeeded: false })
      assert.isTrue((yield* retried(telegramSendRetrySchedule, [api(502)], "1 minute")).succeeded)
    }))
})
