import { Context, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { JobQueue, type QueueOutage } from "../platform/JobQueue.ts"
import { type StorageOutage, storageOutage } from "../platform/StorageOutage.ts"

/**
 * A group upgraded to a supergroup gets a new chat id (PROTOCOLS.md, Where a message belongs):
 * Telegram says so with a migrate_to_chat_id service message, and by refusing sends to the old
 * id (400 with parameters.migrate_to_chat_id). Either way the chat moves to the new id.
 */
export class ChatMigration extends Context.Service<ChatMigration, {
  /**
   * Moves the chat `fromChatId` (its conversations, mailbox and usage) to `toChatId` and wakes
   * the new one, in one transaction; a second call moves nothing more. A message a turn is
   * answering now stays: that turn hands it over when its send is refused. The old chat's open
   * conversation carries on in the new one.
   */
  readonly move: (fromChatId: number, toChatId: number) => Effect.Effect<void, StorageOutage | QueueOutage>
}>()("bot/ChatMigration") {
  static readonly layer = Layer.effect(
    ChatMigration,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const queue = yield* JobQueue

      return ChatMigration.of({
        move: Effect.fn("ChatMigration.move")(function*(fromChatId: number, toChatId: number) {
          yield* sql.withTransaction(Effect.gen(function*() {
            yield* sql`
              insert into chats (id, type, title)
              select ${toChatId}, 'supergroup', title from chats where id = ${fromChatId}
              on conflict (id) do nothing`
            yield* sql`update chats set migrated_to_chat_id = ${toChatId} where id = ${fromChatId}`
            // One open conversation per topic: the old chat's, which has the history, wins.
            yield* sql`
              update conversations set ended_at = now()
              where chat_id = ${toChatId} and ended_at is null
                and thread_id in (select thread_id from conversations where chat_id = ${fromChatId} and ended_at is null)`
            yield* sql`update conversations set chat_id = ${toChatId} where chat_id = ${fromChatId}`
            yield* sql`update messages set chat_id = ${toChatId} where chat_id = ${fromChatId} and status <> 'processing'`
            yield* sql`update usage set chat_id = ${toChatId} where chat_id = ${fromChatId}`
          })).pipe(Effect.mapError(storageOutage))
          yield* queue.wake([toChatId])
          yield* Effect.logInfo("chat moved to its supergroup").pipe(
            Effect.annotateLogs({ from_chat_id: fromChatId, to_chat_id: toChatId })
          )
        })
      })
    })
  )
}
