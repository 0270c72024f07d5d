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
   * the new one, in one transaction; a second call moves nothing more. While a turn is answering
   * in the old chat nothing moves yet: that turn's send is refused, and it calls this again once
   * it handed its message back. The old chat's open conversation carries on in the new one.
   */
  readonly move: (fromChatId: number, toChatId: number) => Effect.Effect<void, StorageOutage | QueueOutage>
  /**
   * Finishes the moves that waited for a turn whose send still went through (it answered just
   * before the upgrade, so no refusal came to move the chat): chats with a known new id that
   * still have mail or an open conversation. Run by the sweeper.
   */
  readonly finishWaiting: Effect.Effect<void, StorageOutage | QueueOutage>
}>()("bot/ChatMigration") {
  static readonly layer = Layer.effect(
    ChatMigration,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const queue = yield* JobQueue

      const move = Effect.fn("ChatMigration.move")(function*(fromChatId: number, toChatId: number) {
          const moved = yield* sql.withTransaction(Effect.gen(function*() {
            yield* sql`
              insert into chats (id, type, title)
              select ${toChatId}, 'supergroup', title from chats where id = ${fromChatId}
              on conflict (id) do nothing`
            // A turn answering in the old chat now: its refused send moves everything, after it.
            // Moving before would let the new chat's worker answer later mail alongside it.
            const busy = yield* sql<{ busy: boolean }>`
              update chats set migrated_to_chat_id = ${toChatId} where id = ${fromChatId}
              returning exists (select 1 from messages where chat_id = ${fromChatId} and status = 'processing') as busy`
            if (busy[0]?.busy === true) return false
            // One open conversation per topic: the one opened first (the old chat's, with its history) wins.
            yield* sql`
              update conversations c set ended_at = now()
              where c.ended_at is null and c.chat_id in (${fromChatId}, ${toChatId})
                and exists (
                  select 1 from conversations o
                  where o.ended_at is null and o.chat_id in (${fromChatId}, ${toChatId}) and o.thread_id = c.thread_id
                    and (o.started_at, o.id) < (c.started_at, c.id))`
            yield* sql`update conversations set chat_id = ${toChatId} where chat_id = ${fromChatId}`
            // Reply ids of the old chat mean nothing in the new one: a queued redo sends afresh.
            yield* sql`
              update messages set chat_id = ${toChatId},
                reply_message_ids = case when status = 'queued' then '[]'::jsonb else reply_message_ids end
              where chat_id = ${fromChatId}`
            yield* sql`update usage set chat_id = ${toChatId} where chat_id = ${fromChatId}`
            return true
          })).pipe(Effect.mapError(storageOutage))
          if (moved) yield* queue.wake([toChatId])
          yield* Effect.logInfo(moved ? "chat moved to its supergroup" : "chat move waits for the turn in flight").pipe(
            Effect.annotateLogs({ from_chat_id: fromChatId, to_chat_id: toChatId })
          )
        })

      return ChatMigration.of({
        move,
        finishWaiting: Effect.gen(function*() {
          const waiting = yield* sql<{ id: bigint; to: bigint }>`
            select c.id, c.migrated_to_chat_id as to from chats c
            where c.migrated_to_chat_id is not null and (
              exists (select 1 from messages m where m.chat_id = c.id and m.status in ('queued', 'processing'))
              or exists (select 1 from conversations o where o.chat_id = c.id and o.ended_at is null))
            limit 100`.pipe(Effect.mapError(storageOutage))
          for (const chat of waiting) yield* move(Number(chat.id), Number(chat.to))
        }).pipe(Effect.withSpan("ChatMigration.finishWaiting"))
      })
    })
  )
}
