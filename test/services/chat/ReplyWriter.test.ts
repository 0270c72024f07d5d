import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Layer } from "effect"
import { TestClock } from "effect/testing"
import * as TelegramMemory from "../../../src/layers/telegram/TelegramMemory.ts"
import { TelegramScript } from "../../../src/layers/telegram/TelegramMemory.ts"
import { cursor, previewEveryMillis, ReplyWriter } from "../../../src/services/chat/ReplyWriter.ts"
import { SendPacer } from "../../../src/services/telegram/SendPacer.ts"
import { Telegram } from "../../../src/services/telegram/Telegram.ts"

const testLayer = ReplyWriter.layer.pipe(Layer.provideMerge(Layer.mergeAll(TelegramMemory.layer, SendPacer.layer)))

/** Each test on its own Telegram and pacer: no message, send slot or preview time carries over. */
const fresh = <A, E>(body: Effect.Effect<A, E, ReplyWriter | Telegram | TelegramScript | SendPacer>) =>
  Effect.provide(body, testLayer)

/** A reply in `chatId` (a group: previews are edited messages), its persisted ids recorded. */
const open = (chatId: number, existingIds: ReadonlyArray<number> = []) =>
  Effect.gen(function*() {
    const persisted: Array<ReadonlyArray<number>> = []
    const reply = yield* ReplyWriter.use((writer) =>
      writer.open({ chatId }, existingIds, (ids) => Effect.sync(() => void persisted.push([...ids]))))
    return { reply, persisted }
  })

const texts = (chatId: number) => TelegramScript.use((t) => t.messages(chatId)).pipe(Effect.map((ms) => ms.map((m) => m.text)))

describe("ReplyWriter", () => {
  it.effect(`previews at most once per ${previewEveryMillis} ms: ${previewEveryMillis - 1} ms later is dropped, ${previewEveryMillis} ms is shown`, () =>
    fresh(Effect.gen(function*() {
      const { reply } = yield* open(-1)
      yield* reply.preview("one")
      yield* TestClock.adjust(previewEveryMillis - 1)
      yield* reply.preview("one two")
      assert.deepStrictEqual(yield* texts(-1), [`one${cursor}`])
      yield* TestClock.adjust(1)
      yield* reply.preview("one two three")
      assert.deepStrictEqual(yield* texts(-1), [`one two three${cursor}`])
    })))

  it.effect("skips previews while sends wait for the bot's pace; the final text still goes", () =>
    fresh(Effect.gen(function*() {
      const pacer = yield* SendPacer
      const backlog = yield* Effect.forkChild(Effect.forEach(Array.from({ length: 40 }), () => pacer.awaitTurn("sendMessage", undefined), {
        concurrency: "unbounded",
        discard: true
      }))
      yield* Effect.yieldNow
      const { reply } = yield* open(-2)
      yield* reply.preview("not now")
      assert.deepStrictEqual(yield* texts(-2), [])
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(backlog)
      yield* reply.finish("final")
      assert.deepStrictEqual(yield* texts(-2), ["final"])
    })))

  it.effect("splits a final answer over 4096 characters into messages, each stored as it is sent", () =>
    fresh(Effect.gen(function*() {
      const paragraph = "word ".repeat(800).trim() // 3,999 characters
      const { persisted, reply } = yield* open(-3)
      const ids = yield* reply.finish([paragraph, paragraph, paragraph].join("\n\n"))
      const shown = yield* texts(-3)
      assert.strictEqual(shown.length, 3)
      for (const text of shown) assert.isAtMost(text.length, 4096)
      assert.deepStrictEqual(persisted, [ids.slice(0, 1), ids.slice(0, 2), ids])
    })))

  it.effect("an answer of exactly 4096 characters is one message; 4097 are two", () =>
    fresh(Effect.gen(function*() {
      const { reply: exact } = yield* open(-4)
      yield* exact.finish("x".repeat(4096))
      assert.deepStrictEqual((yield* texts(-4)).map((t) => t.length), [4096])
      const { reply: over } = yield* open(-5)
      yield* over.finish("x".repeat(4097))
      assert.deepStrictEqual((yield* texts(-5)).map((t) => t.length), [4096, 1])
    })))

  it.effect("a redo edits the earlier attempt's messages and deletes the ones its shorter answer no longer needs", () =>
    fresh(Effect.gen(function*() {
      const telegram = yield* Telegram
      const earlier = [yield* telegram.sendMessage(-6, "part 1 ▍"), yield* telegram.sendMessage(-6, "part 2 ▍")]
      const { persisted, reply } = yield* open(-6, earlier)
      const ids = yield* reply.finish("short")
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
      const ids = yield* reply.finish("new")
      assert.notStrictEqual(ids[0], gone)
      assert.deepStrictEqual(yield* texts(-7), ["new"])
      assert.deepStrictEqual(persisted, [ids])
    })))
})
