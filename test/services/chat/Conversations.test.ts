import { assert, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { afterAll } from "vitest"
import { Conversations } from "../../../src/services/chat/Conversations.ts"
import { testDatabase } from "../../support/Database.ts"

const database = testDatabase(
  {},
  `insert into users (id, first_name, last_name) values (7, 'Ada', 'Lovelace');
   insert into chats (id, type) values (7, 'private');
   insert into telegram_updates (update_id, kind) values (1, 'Text'), (2, 'Text'), (3, 'Text'), (4, 'Text'), (5, 'Text')`
)
afterAll(() => database.drop())

layer(Conversations.layer.pipe(Layer.provideMerge(database.layer)), { excludeTestServices: true })("Conversations (real Postgres)", (it) => {
  it.effect("recall opens the topic's conversation once, then gives its answered exchanges newest first, merged texts included", () =>
    Effect.gen(function*() {
      const conversations = yield* Conversations
      const where = { chatId: 7, threadId: null, userId: 7 }
      const opened = yield* conversations.recall(where, 100, 10)
      assert.deepStrictEqual(opened.history, [])
      const id = opened.conversationId
      database.query(`
        insert into messages (id, update_id, chat_id, user_id, telegram_message_id, text, status, answer, conversation_id) overriding system value values
          (1, 1, 7, 7, 1, 'one', 'answered', 'A1', '${id}'),
          (2, 2, 7, 7, 2, 'two', 'answered', 'A2', '${id}'),
          (3, 3, 7, 7, 3, 'and more', 'merged', null, '${id}'),
          (4, 4, 7, 7, 4, 'failed one', 'failed', null, '${id}'),
          (5, 5, 7, 7, 5, 'now', 'processing', null, '${id}');
        update messages set merged_into = 2 where id = 3`)
      const recalled = yield* conversations.recall(where, 5, 10)
      assert.strictEqual(recalled.conversationId, id, "the same conversation, not a second one")
      const sender = { id: 7, name: "Ada Lovelace" }
      assert.deepStrictEqual(recalled.history, [
        { question: "two\n\nand more", answer: "A2", sender },
        { question: "one", answer: "A1", sender }
      ])
      assert.deepStrictEqual((yield* conversations.recall(where, 5, 1)).history.map((e) => e.answer), ["A2"])
      assert.deepStrictEqual((yield* conversations.recall(where, 2, 10)).history.map((e) => e.answer), ["A1"])
      // Another topic of the chat has a conversation of its own.
      const topic = yield* conversations.recall({ ...where, threadId: 9 }, 5, 10)
      assert.notStrictEqual(topic.conversationId, id)
      assert.deepStrictEqual(topic.history, [])
      assert.strictEqual(database.query("select count(*) from conversations"), "2")
    }))
})
