import { assert, it } from "@effect/vitest"
import { Effect, Fiber, Layer } from "effect"
import { TestClock } from "effect/testing"
import { afterAll } from "vitest"
import { draftIdOf, Stops } from "../../../src/services/chat/Stops.ts"
import { Telegram } from "../../../src/services/telegram/Telegram.ts"
import { testDatabase } from "../../support/Database.ts"

// Two answers streaming in chat 1 (messages 1 and 2) and one in chat 2.
const database = testDatabase(
  {},
  `insert into chats (id, type) values (1, 'private'), (2, 'private');
   insert into telegram_updates (update_id, kind) values (1, 'Text'), (2, 'Text'), (3, 'Text');
   insert into messages (id, update_id, chat_id, telegram_message_id, text, status) overriding system value
     values (1, 1, 1, 1, 'a', 'processing'), (2, 2, 1, 2, 'b', 'processing'), (3, 3, 2, 3, 'c', 'processing')`
)
afterAll(() => database.drop())

// Stops answers button presses through Telegram; drafts' stops (all this test sends) need none.
const stopsLayer = Stops.layer.pipe(Layer.provide(Layer.succeed(Telegram, Telegram.of({} as never))), Layer.provideMerge(database.layer))

it.effect("a draft's stop ends the wait of its answer only, within the next second's look", () =>
  Effect.gen(function*() {
    const stops = yield* Stops
    const waits = yield* Effect.forEach([1, 2, 3], (id) => Effect.forkChild(stops.awaitStop(id)))
    yield* TestClock.adjust("1 second")
    assert.isTrue(waits.every((wait) => wait.pollUnsafe() === undefined), "nothing stopped yet")
    yield* stops.fromDraft(1, draftIdOf(2))
    assert.isUndefined(waits[1]!.pollUnsafe(), "looked for on the next second, not before")
    yield* TestClock.adjust("1 second")
    yield* Fiber.join(waits[1]!)
    assert.isTrue(waits[0]!.pollUnsafe() === undefined && waits[2]!.pollUnsafe() === undefined, "the others stream on")
    assert.strictEqual(database.query("select id from messages where stop_requested_at is not null"), "2")
    yield* Effect.forEach([waits[0]!, waits[2]!], Fiber.interrupt)
  }).pipe(Effect.provide(stopsLayer)))
