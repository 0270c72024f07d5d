import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { describeTelegram, telegramRetrySchedule, telegramSendRetrySchedule } from "../../../src/layers/telegram/TelegramGrammy.ts"
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

describe("Telegram's error descriptions as kept", () => {
  it("keeps Telegram's own form, and replaces anything else with the code alone", () => {
    for (
      const description of [
        "Bad Request: MESSAGE_TOO_LONG",
        "Forbidden: bot was blocked by the user",
        "Too Many Requests: retry after 31",
        "Bad Request: can't parse entities: Can't find end of the entity starting at byte offset 12",
        "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
        "Bad Request: wrong file identifier/HTTP URL specified",
        "Bad Gateway",
        "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message"
      ]
    ) assert.strictEqual(describeTelegram(400, description), description)
    for (
      const description of [
        "<html><body><h1>502 Bad Gateway</h1></body></html>",
        "Unauthorized: 123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw is not valid",
        "Bad Request: line one\nline two",
        `Bad Request: ${"x".repeat(301)}`
      ]
    ) assert.strictEqual(describeTelegram(502, description), "Telegram answered 502 (its description is not kept)")
  })
})
