import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Layer } from "effect"
import { TestClock } from "effect/testing"
import * as TelegramMemory from "../../../src/layers/telegram/TelegramMemory.ts"
import { TelegramScript } from "../../../src/layers/telegram/TelegramMemory.ts"
import { cursor, type LiveReply, previewEveryMillis, ReplyWriter, type ReplyTarget } from "../../../src/services/chat/ReplyWriter.ts"
import { SendBudget } from "../../../src/services/telegram/SendBudget.ts"
import { Telegram } from "../../../src/services/telegram/Telegram.ts"

const testLayer = ReplyWriter.layer.pipe(Layer.provideMerge(Layer.mergeAll(TelegramMemory.layer, SendBudget.layerTest(20))))

/** Each test on its own Telegram and send budget (20 a second): no message, turn or preview time carries over. */
const fresh = <A, E>(body: Effect.Effect<A, E, ReplyWriter | Telegram | TelegramScript | SendBudget>) =>
  Effect.provide(body, testLayer)

/** A reply to `target` (a number: that group chat, whose previews are edited messages), its persisted ids recorded. */
const open = (target: number | ReplyTarget, existingIds: ReadonlyArray<number> = []) =>
  Effect.gen(function*() {
    const persisted: Array<ReadonlyArray<number>> = []
    const reply = yield* ReplyWriter.use((writer) =>
      writer.open(typeof target === "number" ? { chatId: target } : target, existingIds, (ids) => Effect.sync(() => void persisted.push([...ids]))))
    return { reply, persisted }
  })

/** Lets `millis` pass in 50 ms steps, so the forked progress and budget keep up with the clock. */
const elapse = (millis: number) =>
  Effect.gen(function*() {
    for (let t = 0; t < millis; t += 50) yield* TestClock.adjust(Math.min(50, millis - t))
  })

/** The final answer shown, its sends paid from the budget (20 a second) as time passes. */
const finished = (reply: LiveReply, markdown: string) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkChild(reply.finish(markdown))
    yield* elapse(5_000)
    return yield* Fiber.join(fiber)
  })

/** The signs of progress the chat got: typing and drafts. */
const signs = (chatId: number) =>
  TelegramScript.use((t) => t.calls).pipe(Effect.map((calls) =>
    calls.filter((c) => c.chatId === chatId).map((c) => (c.method === "sendChatAction" ? "typing" : `draft:${c.text}`))))

const texts = (chatId: number) => TelegramScript.use((t) => t.messages(chatId)).pipe(Effect.map((ms) => ms.map((m) => m.text)))

describe("ReplyWriter", () => {
  it.effect(`shows typing until there is text, then the latest text at most once per ${previewEveryMillis} ms`, () =>
    fresh(Effect.scoped(Effect.gen(function*() {
      const { reply } = yield* open({ chatId: 1, draftId: 5 })
      yield* reply.showProgress
      yield* elapse(100)
      yield* reply.preview("one")
      yield* elapse(100)
      yield* reply.preview("one two")
      yield* elapse(previewEveryMillis - 300)
      assert.deepStrictEqual(yield* signs(1), ["typing", `draft:one${cursor}`])
      yield* reply.preview("one two three")
      yield* elapse(200)
      assert.deepStrictEqual(yield* signs(1), ["typing", `draft:one${cursor}`, `draft:one two three${cursor}`])
    }))))

  it.effect("a sign waiting for its turn shows what is there when the turn comes: text, not typing", () =>
    fresh(Effect.scoped(Effect.gen(function*() {
      const budget = yield* SendBudget
      // 20 final answers queued first: a second's worth at 20 a second.
      const backlog = yield* Effect.forkChild(Effect.forEach(Array.from({ length: 20 }, (_, i) => 100 + i), (chat) =>
        budget.awaitTurn("sendMessage", chat), { concurrency: "unbounded", discard: true }))
      yield* Effect.yieldNow
      const { reply } = yield* open({ chatId: 2, draftId: 6 })
      yield* reply.showProgress
      yield* elapse(100)
      yield* reply.preview("hello")
      assert.deepStrictEqual(yield* signs(2), [])
      yield* elapse(1_000)
      yield* Fiber.join(backlog)
      assert.deepStrictEqual(yield* signs(2), [`draft:hello${cursor}`])
    }))))

  it.effect("a reply's first text goes before typing for other chats, whether its own typing went out or still waits", () =>
    fresh(Effect.scoped(Effect.gen(function*() {
      // 15 replies start at once: 0.75 s of typing at 20 a second (with more replies waiting
      // than the window has room for, typing would wait: SendBudget's tests).
      const replies: Array<LiveReply> = []
      for (let chat = 201; chat <= 215; chat++) {
        const { reply } = yield* open({ chatId: chat, draftId: chat })
        yield* reply.showProgress
        replies.push(reply)
      }
      yield* elapse(100)
      assert.deepStrictEqual(yield* signs(201), ["typing"])
      // Text for the first chat (typing shown) and the last (typing still waiting its turn).
      yield* replies[0]!.preview("first")
      yield* replies[14]!.preview("last")
      yield* elapse(100)
      assert.deepStrictEqual(yield* signs(201), ["typing", `draft:first${cursor}`])
      assert.deepStrictEqual(yield* signs(215), [`draft:last${cursor}`])
      const typed = (yield* TelegramScript.use((t) => t.calls)).filter((c) => c.method === "sendChatAction").length
      assert.isBelow(typed, 6)
    }))))

  it.effect("shows nothing more once the answer is done (its scope closed), however long delivery waits", () =>
    fresh(Effect.gen(function*() {
      const { reply } = yield* open({ chatId: -2 })
      yield* Effect.scoped(reply.showProgress.pipe(Effect.andThen(elapse(100))))
      yield* elapse(10_000)
      assert.deepStrictEqual(yield* signs(-2), ["typing"])
      yield* finished(reply, "final")
      assert.deepStrictEqual(yield* texts(-2), ["final"])
    })))

  it.effect("splits a final answer over 4096 characters into messages, each stored as it is sent", () =>
    fresh(Effect.gen(function*() {
      const paragraph = "word ".repeat(800).trim() // 3,999 characters
      const { persisted, reply } = yield* open(-3)
      const ids = yield* finished(reply, [paragraph, paragraph, paragraph].join("\n\n"))
      const shown = yield* texts(-3)
      assert.strictEqual(shown.length, 3)
      for (const text of shown) assert.isAtMost(text.length, 4096)
      assert.deepStrictEqual(persisted, [ids.slice(0, 1), ids.slice(0, 2), ids])
    })))

  it.effect("an answer of exactly 4096 characters is one message; 4097 are two", () =>
    fresh(Effect.gen(function*() {
      const { reply: exact } = yield* open(-4)
      yield* finished(exact, "x".repeat(4096))
      assert.deepStrictEqual((yield* texts(-4)).map((t) => t.length), [4096])
      const { reply: over } = yield* open(-5)
      yield* finished(over, "x".repeat(4097))
      assert.deepStrictEqual((yield* texts(-5)).map((t) => t.length), [4096, 1])
    })))

  it.effect("a redo edits the earlier attempt's messages and deletes the ones its shorter answer no longer needs", () =>
    fresh(Effect.gen(function*() {
      const telegram = yield* Telegram
      const earlier = [yield* telegram.sendMessage(-6, "part 1 ▍"), yield* telegram.sendMessage(-6, "part 2 ▍")]
      const { persisted, reply } = yield* open(-6, earlier)
      const ids = yield* finished(reply, "short")
      assert.deepStrictEqual(ids, earlier.slice(0, 1))
      assert.deepStrictEqual(yield* texts(-6), ["short"])
      assert.deepStrictEqual(persisted, [earlier.slice(0, 1)])
    })))

  it.effect("sends the reply anew when the user deleted the one an earlier attempt sent", () =>
    fresh(Effect.gen(function*() {
      const telegram = yield* Telegram
      const gone = yield* telegram.sendMessage(-7, "old ▍")
      yield* telegram.deleteMessage(-7, gone)
      const { persisted, reply } = yield* open(-7, [gone])
      const ids = yield* finished(reply, "new")
      assert.notStrictEqual(ids[0], gone)
      assert.deepStrictEqual(yield* texts(-7), ["new"])
      assert.deepStrictEqual(persisted, [ids])
    })))
})
