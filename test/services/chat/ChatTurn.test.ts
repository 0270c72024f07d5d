import { assert, describe, layer } from "@effect/vitest"
import { Cause, Effect, Fiber, Option } from "effect"
import { TestClock } from "effect/testing"
import { AiScript, llmError } from "../../../src/layers/llm/AiMemory.ts"
import { TelegramScript } from "../../../src/layers/telegram/TelegramMemory.ts"
import type { Admitted } from "../../../src/services/chat/Admission.ts"
import { texts } from "../../../src/services/chat/ChatTexts.ts"
import { ChatTurn, maxAttempts } from "../../../src/services/chat/ChatTurn.ts"
import { systemPrompt } from "../../../src/services/llm/Prompt.ts"
import { SendBudget } from "../../../src/services/telegram/SendBudget.ts"
import { ChatMigrated, RejectedFormatting, TelegramApiError, UnreachableChat } from "../../../src/services/telegram/Telegram.ts"
import { chatTurnLayer, mail, Stores } from "../../support/ChatTurnLayer.ts"

/** Runs a turn to its end: its outcome, what Telegram shows and what the stores were asked. */
const turn = (m: ReturnType<typeof mail>) =>
  Effect.gen(function*() {
    const exit = yield* Effect.exit(ChatTurn.use((chatTurn) => chatTurn.run(m)))
    const telegram = yield* TelegramScript
    const stores = yield* Stores
    return {
      exit,
      shown: (yield* telegram.messages(m.chatId)).map((message) => message.text),
      calls: (yield* telegram.calls).filter((c) => c.chatId === m.chatId),
      events: stores.events.filter((e) => ("messageId" in e ? e.messageId === m.id : e.chatId === m.chatId))
    }
  })

const requestsTo = (chatText: string) =>
  AiScript.use((ai) => ai.requests).pipe(
    Effect.map((requests) => requests.filter((r) => r.messages.at(-1)?.content === chatText))
  )

/** Each test starts from empty scripts and stores, whatever the previous one left. */
const isolated = <A, E, R>(body: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    yield* AiScript.use((ai) => ai.reset)
    yield* TelegramScript.use((telegram) => telegram.reset)
    const stores = yield* Stores
    stores.events.length = 0
    stores.history = []
    stores.admitted = { _tag: "Llm" }
    stores.toldAlready.clear()
    stores.toldTextOnly = false
    stores.stopRequested.clear()
  }).pipe(Effect.andThen(body))

/** Lets `millis` pass in 100 ms steps, so the fibers a turn forks (its progress, the send budget) keep up with the clock. */
const elapse = (millis: number) =>
  Effect.gen(function*() {
    for (let t = 0; t < millis; t += 100) yield* TestClock.adjust(Math.min(100, millis - t))
  })

const gatewayDown = (method = "sendMessage") => new TelegramApiError({ method, code: 502, message: "Bad Gateway" })

layer(chatTurnLayer)("ChatTurn", (it) => {
  describe("commands and notices (no LLM)", () => {
    it.effect("answers /start, /help and /new@any_bot with fixed texts; /new opens a new conversation", () =>
      isolated(Effect.gen(function*() {
        const start = yield* turn(mail({ chatId: 1, text: "/start" }))
        const help = yield* turn(mail({ chatId: 1, text: "/HELP please" }))
        const fresh = yield* turn(mail({ chatId: 1, text: "/new@some_bot" }))
        assert.deepStrictEqual(fresh.shown, [texts.start, texts.help, texts.newConversation])
        assert.deepStrictEqual(fresh.events.map((e) => e._tag), ["startNew", "recordReplyIds", "complete"])
        for (const t of [start, help, fresh]) assert.isTrue(t.exit._tag === "Success")
        assert.deepStrictEqual((yield* AiScript.use((ai) => ai.requests)).length, 0)
        const completed = start.events.find((e) => e._tag === "complete")
        assert.strictEqual(completed?._tag === "complete" && completed.record.model, null)
      })))

    it.effect("/new in a group only from its admins; anyone else is told so and the conversation goes on", () =>
      isolated(Effect.gen(function*() {
        const telegram = yield* TelegramScript
        const member = yield* turn(mail({ chatId: -30, userId: 31, chatType: "supergroup", text: "/new" }))
        assert.deepStrictEqual(member.shown, [texts.newAdminsOnly])
        assert.notInclude(member.events.map((e) => e._tag), "startNew")
        yield* telegram.makeAdmin(-30, 32)
        const admin = yield* turn(mail({ chatId: -30, userId: 32, chatType: "supergroup", text: "/new" }))
        assert.include(admin.events.map((e) => e._tag), "startNew")
        assert.strictEqual(admin.shown.at(-1), texts.newConversation)
      })))

    it.effect("past the updates limit: says slow down once, then stays silent, never asking the LLM", () =>
      isolated(Effect.gen(function*() {
        const stores = yield* Stores
        const first = yield* turn(mail({ chatId: 2, text: "too fast", overLimit: true }))
        assert.deepStrictEqual(first.shown, [texts.slowDown])
        assert.deepStrictEqual(first.events.map((e) => e._tag), ["decide", "recordReplyIds", "complete"])
        stores.toldAlready.add("slow_down")
        const later = yield* turn(mail({ chatId: 2, text: "still fast", overLimit: true }))
        assert.deepStrictEqual(later.shown, [texts.slowDown]) // nothing new
        assert.deepStrictEqual(later.events.map((e) => e._tag === "decide" ? `decide:${e.gate}` : e._tag), ["decide:silenced", "skip"])
        assert.lengthOf(yield* requestsTo("too fast"), 0)
        assert.lengthOf(yield* requestsTo("still fast"), 0)
      })))

    it.effect("past the updates limit a command is silenced like any message: a flood of /account is a flood", () =>
      isolated(Effect.gen(function*() {
        const stores = yield* Stores
        stores.toldAlready.add("slow_down")
        const { events, shown } = yield* turn(mail({ chatId: 8, text: "/account", overLimit: true }))
        assert.deepStrictEqual(shown, [])
        assert.deepStrictEqual(events.map((e) => e._tag), ["decide", "skip"])
      })))

    it.effect("a redo keeps the slow-down decision: it says it again rather than going silent", () =>
      isolated(Effect.gen(function*() {
        const stores = yield* Stores
        stores.toldAlready.add("slow_down") // by this very message's first attempt
        const { events, shown } = yield* turn(mail({ chatId: 4, text: "fast", overLimit: true, gate: "slow_down", attempts: 2 }))
        assert.deepStrictEqual(shown, [texts.slowDown])
        assert.notInclude(events.map((e) => e._tag), "decide")
      })))

    it.effect("answers /subscribe and /account with the billing replies and their buttons", () =>
      isolated(Effect.gen(function*() {
        const telegram = yield* TelegramScript
        yield* turn(mail({ chatId: 5, text: "/subscribe" }))
        const { shown } = yield* turn(mail({ chatId: 5, text: "/account@memory_bot" }))
        assert.deepStrictEqual(shown, ["subscribe here", "account of 5"])
        const [subscribe] = yield* telegram.messages(5)
        assert.deepStrictEqual(subscribe!.buttons, [{ text: "Subscribe", url: "https://pay.example/checkout" }])
      })))

    it.effect("tells a notice with its buttons, without the LLM and without a conversation", () =>
      isolated(Effect.gen(function*() {
        const buttons = [{ text: "Update payment method", url: "https://pay.example/card" }]
        const { events } = yield* turn(mail({ chatId: 6, kind: "notice", text: "Your payment **failed**.", buttons, updateId: null }))
        const telegram = yield* TelegramScript
        assert.deepStrictEqual((yield* telegram.messages(6)).map((m) => [m.text, m.buttons]), [["Your payment <b>failed</b>.", buttons]])
        const completed = events.at(-1)
        assert.strictEqual(completed?._tag === "complete" && completed.record.conversationId, null)
        assert.lengthOf(yield* AiScript.use((ai) => ai.requests), 0)
      })))

    it.effect("answers what Admission decides instead of the LLM: paywall, fair use, rate limit", () =>
      isolated(Effect.gen(function*() {
        const stores = yield* Stores
        stores.admitted = { _tag: "Paywall", limit: 50, day: "2026-11-29" }
        const paywall = yield* turn(mail({ chatId: 7, text: "one more" }))
        stores.admitted = { _tag: "FairUse", limit: 2000, day: "2026-11-29" }
        yield* turn(mail({ chatId: 7, text: "and more" }))
        stores.admitted = { _tag: "RateLimited", perMinute: 5, retryAfterSeconds: 1 }
        const limited = yield* turn(mail({ chatId: 7, text: "and again" }))
        assert.deepStrictEqual(limited.shown, [
          "paywall after 50",
          "You've reached today's fair-use limit of 2000 messages. It starts again at midnight (UTC time).",
          "You can send me 5 messages a minute. Please try again in 1 second."
        ])
        assert.deepStrictEqual((yield* TelegramScript.use((t) => t.messages(7)))[0]!.buttons, [
          { text: "Subscribe", url: "https://pay.example/checkout" }
        ])
        assert.lengthOf(yield* AiScript.use((ai) => ai.requests), 0)
        assert.strictEqual(paywall.events.at(-1)?._tag, "complete")
      })))

    it.effect("past a spend cap answers with its notice, never asking the LLM", () =>
      isolated(Effect.gen(function*() {
        const stores = yield* Stores
        stores.admitted = { _tag: "SpendCapped", cap: "user", day: "2026-11-29" }
        yield* turn(mail({ chatId: 10, text: "one more" }))
        stores.admitted = { _tag: "SpendCapped", cap: "daily_spend", day: "2026-11-29" }
        const global = yield* turn(mail({ chatId: 10, text: "and more" }))
        assert.deepStrictEqual(global.shown, [texts.tokenCap("UTC"), texts.spendCap])
        assert.lengthOf(yield* AiScript.use((ai) => ai.requests), 0)
      })))

    it.effect("past a quota or the LLM rate limit, once told, stays silent (no reply, the message skipped)", () =>
      isolated(Effect.gen(function*() {
        const stores = yield* Stores
        stores.toldAlready.add("paywall").add("fair_use").add("rate_limited").add("token_cap").add("spend_cap")
        const admissions: ReadonlyArray<Admitted> = [
          { _tag: "Paywall", limit: 50, day: "2026-11-29" },
          { _tag: "FairUse", limit: 2000, day: "2026-11-29" },
          { _tag: "RateLimited", perMinute: 5, retryAfterSeconds: 1 },
          { _tag: "SpendCapped", cap: "user", day: "2026-11-29" },
          { _tag: "SpendCapped", cap: "daily_spend", day: "2026-11-29" }
        ]
        for (const [i, admitted] of admissions.entries()) {
          stores.admitted = admitted
          const { events, shown } = yield* turn(mail({ chatId: 9, text: `flood ${i}` }))
          assert.deepStrictEqual(shown, [])
          assert.deepStrictEqual(events.map((e) => e._tag), ["skip"])
        }
        assert.lengthOf(yield* TelegramScript.use((t) => t.messages(9)), 0)
        assert.lengthOf(yield* AiScript.use((ai) => ai.requests), 0)
      })))

    it.effect("treats /newer and a command in mid-text as questions for the LLM", () =>
      isolated(Effect.gen(function*() {
        yield* turn(mail({ chatId: 3, text: "/newer things" }))
        const { events, shown } = yield* turn(mail({ chatId: 3, text: "what does /new do?" }))
        assert.deepStrictEqual(shown, ["Echo: /newer things", "Echo: what does /new do?"])
        assert.notInclude(events.map((e) => e._tag), "startNew")
      })))
  })

  describe("answers from the LLM", () => {
    it.effect("asks with the system prompt, the history oldest first and the message, then records the usage", () =>
      isolated(Effect.gen(function*() {
        const stores = yield* Stores
        stores.history = [{ question: "q2", answer: "a2" }, { question: "q1", answer: "a1" }]
        const { events, shown } = yield* turn(mail({ chatId: 10, text: "q3" }))
        stores.history = []
        const [request] = yield* requestsTo("q3")
        assert.deepStrictEqual(request!.messages.map((m) => `${m.role}:${m.content}`), [
          `system:${systemPrompt}`,
          "user:q1",
          "assistant:a1",
          "user:q2",
          "assistant:a2",
          "user:q3"
        ])
        assert.strictEqual(request!.maxTokens, 200)
        assert.deepStrictEqual(shown, ["Echo: q3"])
        const completed = events.at(-1)
        assert.strictEqual(completed?._tag, "complete")
        if (completed?._tag !== "complete") return
        assert.strictEqual(completed.record.model, "memory-model")
        assert.strictEqual(completed.record.conversationId, "conversation-10")
        assert.isAbove(completed.record.tokensIn, 0)
        assert.isAbove(completed.record.tokensOut, 0)
      })))

    it.effect("streams a private chat's answer as drafts, at most one a second, then sends it once", () =>
      isolated(Effect.gen(function*() {
        const ai = yield* AiScript
        // Five pieces 400 ms apart: a draft at 400 ms (the first), then a second later with the
        // text of then (1,400 ms: three pieces); the stream ends at 2,000 ms, before the next.
        yield* ai.answerWith(() => ({ _tag: "Answer", chunks: ["one ", "two ", "three ", "four ", "five"], delay: "400 millis" }))
        const fiber = yield* Effect.forkChild(turn(mail({ chatId: 11, text: "count" })))
        yield* elapse(3_000)
        const { calls, shown } = yield* Fiber.join(fiber)
        const drafts = calls.filter((c) => c.method === "sendMessageDraft").map((c) => c.text)
        assert.deepStrictEqual(drafts, ["one ▍", "one two three ▍"])
        assert.deepStrictEqual(calls.filter((c) => c.method === "sendMessage").map((c) => c.text), ["one two three four five"])
        assert.deepStrictEqual(shown, ["one two three four five"])
        assert.lengthOf(calls.filter((c) => c.method === "editMessageText"), 0)
      })))

    it.effect("streams into a group by editing one message, then edits in the final text", () =>
      isolated(Effect.gen(function*() {
        const ai = yield* AiScript
        // Pieces at 2, 4 and 6 s: the message is sent at 2 s, edited with the text of then, and
        // once more with the final text. (The group's pace is SendBudget.test's and turns.test's:
        // the in-memory Telegram pays no turns.)
        yield* ai.answerWith(() => ({ _tag: "Answer", chunks: ["alpha ", "beta ", "gamma"], delay: "2 seconds" }))
        const fiber = yield* Effect.forkChild(turn(mail({ chatId: -12, chatType: "group", text: "go" })))
        yield* elapse(7_000)
        const { calls, events, shown } = yield* Fiber.join(fiber)
        assert.deepStrictEqual(calls.filter((c) => c.method !== "sendChatAction").map((c) => `${c.method}:${c.text}`), [
          "sendMessage:alpha ▍",
          "editMessageText:alpha beta ▍",
          "editMessageText:alpha beta gamma"
        ])
        assert.deepStrictEqual(shown, ["alpha beta gamma"])
        // The message id was stored the moment the message existed, before the final edit.
        assert.deepStrictEqual(events.map((e) => e._tag), ["recordReplyIds", "complete"])
      })))

    it.effect("shows typing every 4 s while the LLM is thinking", () =>
      isolated(Effect.gen(function*() {
        const ai = yield* AiScript
        yield* ai.answerWith(() => ({ _tag: "Answer", chunks: ["late"], delay: "9 seconds" }))
        const fiber = yield* Effect.forkChild(turn(mail({ chatId: 13, text: "slow" })))
        yield* elapse(9_500)
        const { calls } = yield* Fiber.join(fiber)
        assert.strictEqual(calls.filter((c) => c.method === "sendChatAction").length, 3) // 0, 4 and 8 s
      })))

    it.effect("keeps what was shown, marked as cut off, when the LLM fails mid-answer", () =>
      isolated(Effect.gen(function*() {
        const ai = yield* AiScript
        yield* ai.answerWith(() => ({ _tag: "Fail", chunks: ["half an"], error: llmError(500, "server error") }))
        const { events, exit, shown } = yield* turn(mail({ chatId: 14, text: "break" }))
        assert.isTrue(exit._tag === "Success")
        assert.deepStrictEqual(shown, ["half an\n\n<i>(The answer was cut off. Please ask again.)</i>"])
        const failed = events.at(-1)
        assert.strictEqual(failed?._tag, "fail")
        if (failed?._tag !== "fail") return
        assert.strictEqual(failed.error, "server error")
        assert.strictEqual(failed.record?.model, "memory-model") // the LLM's usage is recorded
      })))

    it.effect("says briefly that it failed when the LLM fails before any text", () =>
      isolated(Effect.gen(function*() {
        const ai = yield* AiScript
        yield* ai.answerWith(() => ({ _tag: "Fail", error: llmError(503, "Service Unavailable") }))
        const { events, shown } = yield* turn(mail({ chatId: 15, text: "key?" }))
        assert.deepStrictEqual(shown, [texts.failed])
        assert.deepStrictEqual(events.at(-1)?._tag, "fail")
      })))

    it.effect("says the service is unavailable (not 'try again') when the LLM refuses the API key, 401 or 403", () =>
      isolated(Effect.gen(function*() {
        const ai = yield* AiScript
        for (const [chatId, status] of [[16, 401], [17, 403]] as const) {
          yield* ai.answerWith(() => ({ _tag: "Fail", error: llmError(status, "Incorrect API key provided: [redacted]") }))
          const { events, shown } = yield* turn(mail({ chatId, text: "key?" }))
          assert.deepStrictEqual(shown, [texts.unavailable])
          assert.deepStrictEqual(events.at(-1)?._tag, "fail")
        }
      })))

    it.effect("cuts the answer off after TURN_TIMEOUT_SECONDS and stops the LLM request", () =>
      isolated(Effect.gen(function*() {
        const ai = yield* AiScript
        yield* ai.answerWith(() => ({ _tag: "Hang", chunks: ["a slow start"] }))
        const fiber = yield* Effect.forkChild(turn(mail({ chatId: 16, text: "hang" })))
        yield* TestClock.adjust("9999 millis")
        assert.isUndefined(fiber.pollUnsafe())
        yield* TestClock.adjust("1 millis")
        const { events, shown } = yield* Fiber.join(fiber)
        const [request] = yield* requestsTo("hang")
        assert.isTrue(request!.interrupted)
        assert.deepStrictEqual(shown, ["a slow start\n\n<i>(The answer was cut off. Please ask again.)</i>"])
        const failed = events.at(-1)
        assert.strictEqual(failed?._tag === "fail" && failed.error, "the turn took too long")
      })))

    it.effect("sends an empty answer as an ellipsis rather than nothing", () =>
      isolated(Effect.gen(function*() {
        const ai = yield* AiScript
        yield* ai.answerWith(() => ({ _tag: "Answer", chunks: ["  \n "] }))
        const { shown } = yield* turn(mail({ chatId: 17, text: "say nothing" }))
        assert.deepStrictEqual(shown, [texts.empty])
      })))
  })

  describe("delivery policy", () => {
    it.effect("Telegram away at the final send: the message goes back with the answer, the attempt counted", () =>
      isolated(Effect.gen(function*() {
        const telegram = yield* TelegramScript
        yield* telegram.failNext("sendMessage", gatewayDown())
        const { events, exit } = yield* turn(mail({ chatId: 20, text: "deliver me" }))
        assert.isTrue(exit._tag === "Failure")
        const error = exit._tag === "Failure" ? Option.getOrUndefined(Cause.findErrorOption(exit.cause)) : undefined
        assert.strictEqual(error?._tag, "DeliveryPostponed")
        const released = events.at(-1)
        assert.strictEqual(released?._tag, "release")
        if (released?._tag !== "release") return
        assert.isTrue(released.countAttempt)
        assert.strictEqual(released.answered?.answer, "Echo: deliver me")
      })))

    it.effect("a kept answer is delivered without asking the LLM again", () =>
      isolated(Effect.gen(function*() {
        const { events, shown } = yield* turn(
          mail({ chatId: 21, text: "asked before", attempts: 2, pendingAnswer: "the kept answer", conversationId: "c-21" })
        )
        assert.deepStrictEqual(shown, ["the kept answer"])
        assert.lengthOf(yield* requestsTo("asked before"), 0)
        const completed = events.at(-1)
        assert.strictEqual(completed?._tag === "complete" && completed.record.conversationId, "c-21")
      })))

    it.effect("Telegram refusing the reply (another 4xx) fails the message with its LLM usage", () =>
      isolated(Effect.gen(function*() {
        const telegram = yield* TelegramScript
        yield* telegram.failNext("sendMessage", new TelegramApiError({ method: "sendMessage", code: 400, message: "Bad Request: TOPIC_CLOSED" }))
        const { events, exit } = yield* turn(mail({ chatId: 22, text: "refused" }))
        assert.isTrue(exit._tag === "Success")
        const failed = events.at(-1)
        assert.strictEqual(failed?._tag, "fail")
        if (failed?._tag !== "fail") return
        assert.strictEqual(failed.error, "Telegram: Bad Request: TOPIC_CLOSED")
        assert.strictEqual(failed.record?.answer, "Echo: refused")
      })))

    it.effect("a chat that blocked the bot is marked unreachable and its mail skipped", () =>
      isolated(Effect.gen(function*() {
        const telegram = yield* TelegramScript
        yield* telegram.failNext("sendMessage", new UnreachableChat({ chatId: 23, message: "Forbidden: bot was blocked by the user" }))
        const { events, exit } = yield* turn(mail({ chatId: 23, text: "/start" }))
        assert.isTrue(exit._tag === "Success")
        assert.deepStrictEqual(events, [{ _tag: "markUnreachable", chatId: 23, reason: "Forbidden: bot was blocked by the user" }])
      })))

    it.effect("formatting Telegram refuses is sent again as plain text", () =>
      isolated(Effect.gen(function*() {
        const ai = yield* AiScript
        const telegram = yield* TelegramScript
        yield* ai.answerWith(() => ({ _tag: "Answer", chunks: ["**bold** move"] }))
        yield* telegram.failNext("sendMessage", new RejectedFormatting({ message: "Bad Request: can't parse entities" }))
        const { calls, events, shown } = yield* turn(mail({ chatId: 24, text: "format" }))
        assert.deepStrictEqual(calls.filter((c) => c.method === "sendMessage").map((c) => `${c.html}:${c.text}`), [
          "true:<b>bold</b> move",
          "false:bold move"
        ])
        assert.deepStrictEqual(shown, ["bold move"])
        assert.strictEqual(events.at(-1)?._tag, "complete")
      })))

    it.effect("a redo edits the reply an earlier attempt sent instead of sending a second one", () =>
      isolated(Effect.gen(function*() {
        const telegram = yield* TelegramScript
        const first = yield* turn(mail({ chatId: -25, chatType: "group", text: "/help" }))
        const [sentId] = (yield* telegram.messages(-25)).map((m) => m.messageId)
        const redo = yield* turn(mail({ chatId: -25, chatType: "group", text: "again", attempts: 2, replyMessageIds: [sentId!] }))
        assert.deepStrictEqual(first.shown, [texts.help])
        assert.deepStrictEqual(redo.shown, ["Echo: again"])
        assert.deepStrictEqual(redo.calls.filter((c) => c.method === "sendMessage").length, 1) // /help's only
      })))
  })

  describe("attempts and flood waits", () => {
    it.effect(`answers on attempt ${maxAttempts} and gives up on attempt ${maxAttempts + 1}`, () =>
      isolated(Effect.gen(function*() {
        const last = yield* turn(mail({ chatId: 30, text: "still trying", attempts: maxAttempts }))
        const over = yield* turn(mail({ chatId: 31, text: "given up", attempts: maxAttempts + 1 }))
        assert.deepStrictEqual(last.shown, ["Echo: still trying"])
        assert.deepStrictEqual(over.shown, [texts.failed])
        const failed = over.events.at(-1)
        assert.strictEqual(failed?._tag === "fail" && failed.error, `gave up after ${maxAttempts} attempts`)
        assert.lengthOf(yield* requestsTo("given up"), 0)
      })))

    it.effect("hands the message back uncounted when the turn is interrupted (shutdown)", () =>
      isolated(Effect.gen(function*() {
        const ai = yield* AiScript
        yield* ai.answerWith(() => ({ _tag: "Hang" }))
        const m = mail({ chatId: 34, text: "stop me" })
        const fiber = yield* Effect.forkChild(ChatTurn.use((chatTurn) => chatTurn.run(m)))
        yield* TestClock.adjust("1 second")
        yield* Fiber.interrupt(fiber)
        const stores = yield* Stores
        assert.deepStrictEqual(stores.events.filter((e) => "messageId" in e && e.messageId === m.id), [
          { _tag: "release", messageId: m.id, countAttempt: false, answered: undefined }
        ])
      })))
  })
  describe("chat kinds", () => {
    it.effect("says 'text only' to an attachment without a caption, once: skipped when the chat was told already", () =>
      isolated(Effect.gen(function*() {
        const voice = yield* turn(mail({ chatId: 40, text: "", attachment: "voice" }))
        assert.deepStrictEqual(voice.shown, [texts.textOnly])
        assert.deepStrictEqual(voice.events.map((e) => e._tag), ["decide", "recordReplyIds", "complete"])
        const stores = yield* Stores
        stores.toldTextOnly = true
        const sticker = yield* turn(mail({ chatId: 41, text: "", attachment: "sticker" }))
        assert.deepStrictEqual(sticker.shown, [])
        assert.deepStrictEqual(sticker.events.map((e) => e._tag), ["skip"])
        assert.lengthOf(yield* AiScript.use((ai) => ai.requests), 0)
      })))

    it.effect("answers a blank text with a hint, without the LLM", () =>
      isolated(Effect.gen(function*() {
        const { shown } = yield* turn(mail({ chatId: 42, text: "\u200B\u2060 " }))
        assert.deepStrictEqual(shown, [texts.emptyText])
        assert.lengthOf(yield* AiScript.use((ai) => ai.requests), 0)
      })))

    it.effect("answers a caption with a note that the attachment was not read, and says when a message was cut to fit", () =>
      isolated(Effect.gen(function*() {
        const caption = yield* turn(mail({ chatId: 43, text: "what is this?", attachment: "photo" }))
        assert.match(caption.shown[0]!, /^Echo: what is this\?\n\n<i>\(I read your caption only: I can't see photos yet\.\)<\/i>$/)
        const long = "y".repeat(10_000)
        const cut = yield* turn(mail({ chatId: 44, text: long }))
        const [request] = yield* AiScript.use((ai) => ai.requests).pipe(Effect.map((rs) => rs.filter((r) => r.messages.at(-1)?.content.startsWith("yyy"))))
        const kept = request!.messages.at(-1)!.content.length
        assert.isBelow(kept, long.length)
        assert.include(cut.shown.join(""), `I read only its first ${kept} characters`)
      })))

    it.effect("stops when the user asks: the request is interrupted, what streamed is kept and marked, the usage recorded as stopped", () =>
      isolated(Effect.gen(function*() {
        const ai = yield* AiScript
        yield* ai.answerWith(() => ({ _tag: "Hang", chunks: ["half an answer"] }))
        const m = mail({ chatId: 45, text: "go on and on" })
        const fiber = yield* Effect.forkChild(turn(m))
        yield* TestClock.adjust("1 second")
        assert.isUndefined(fiber.pollUnsafe())
        ;(yield* Stores).stopRequested.add(m.id)
        yield* TestClock.adjust("1 second")
        const { events, shown } = yield* Fiber.join(fiber)
        assert.deepStrictEqual(shown, ["half an answer\n\n<i>(stopped)</i>"])
        const [request] = yield* requestsTo("go on and on")
        assert.isTrue(request!.interrupted)
        const done = events.at(-1)
        assert.isTrue(done?._tag === "complete" && done.record.stopped === true && done.record.tokensOut > 0)
      })))

    it.effect("in a group topic, replies to the question in its topic with a Stop button while streaming", () =>
      isolated(Effect.gen(function*() {
        const ai = yield* AiScript
        yield* ai.answerWith(() => ({ _tag: "Answer", chunks: ["one ", "two ", "three"], delay: "1 second" }))
        const m = mail({ chatId: -46, chatType: "supergroup", threadId: 7, replyTo: 99, text: "in a topic" })
        const fiber = yield* Effect.forkChild(turn(m))
        yield* elapse(5_000)
        const { calls } = yield* Fiber.join(fiber)
        const sends = calls.filter((c) => c.method === "sendMessage")
        assert.deepStrictEqual(sends.map((c) => [c.threadId, c.replyTo]), [[7, 99]])
        assert.deepStrictEqual(sends[0]!.buttons, [{ text: texts.stopButton, data: `stop:${m.id}` }])
        const typing = calls.filter((c) => c.method === "sendChatAction")
        assert.isTrue(typing.length > 0 && typing.every((c) => c.threadId === 7))
        const edits = calls.filter((c) => c.method === "editMessageText")
        assert.deepStrictEqual(edits.at(-1)!.buttons, [])
      })))

    it.effect("a group that became a supergroup: the message goes back with its answer and moves with the chat", () =>
      isolated(Effect.gen(function*() {
        const telegram = yield* TelegramScript
        yield* telegram.failNext("sendMessage", new ChatMigrated({ chatId: -47, toChatId: -1047, message: "Bad Request: group chat was upgraded to a supergroup chat" }), 10)
        const m = mail({ chatId: -47, chatType: "group", text: "moving" })
        const { events, exit } = yield* turn(m)
        assert.isTrue(exit._tag === "Success")
        const release = events.find((e) => e._tag === "release")
        assert.isTrue(release?._tag === "release" && !release.countAttempt && release.answered?.answer === "Echo: moving")
        assert.deepStrictEqual((yield* Stores).events.filter((e) => e._tag === "move"), [{ _tag: "move", chatId: -47, toChatId: -1047 }])
      })))
  })
})

// A 429 pauses the whole bot (SendBudget): these turns get a send budget of their own.
layer(chatTurnLayer)("ChatTurn flood waits", (it) => {
  it.effect("goes ahead when the chat's flood wait is exactly 30 s (the longest sat out)", () =>
    isolated(Effect.gen(function*() {
      const budget = yield* SendBudget
      yield* budget.rememberFloodWait(33, 30)
      const fiber = yield* Effect.forkChild(turn(mail({ chatId: 33, text: "just in time" })))
      yield* elapse(31_000)
      const { exit, shown } = yield* Fiber.join(fiber)
      assert.isTrue(exit._tag === "Success")
      assert.deepStrictEqual(shown, ["Echo: just in time"])
    })))

  it.effect("postpones without asking the LLM while the chat's (and so the bot's) flood wait is over 30 s, uncounted", () =>
    isolated(Effect.gen(function*() {
      const budget = yield* SendBudget
      yield* budget.rememberFloodWait(32, 31)
      const m = mail({ chatId: 32, text: "wait" })
      const { calls, events, exit } = yield* turn(m)
      assert.isTrue(exit._tag === "Failure")
      assert.deepStrictEqual(events, [{ _tag: "release", messageId: m.id, countAttempt: false, answered: undefined }])
      assert.lengthOf(calls, 0)
      assert.lengthOf(yield* requestsTo("wait"), 0)
    })))
})
