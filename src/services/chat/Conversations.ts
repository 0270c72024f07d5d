import { Context, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import type { Exchange, Sender } from "../llm/Prompt.ts"
import { type StorageOutage, storageOutage } from "../platform/StorageOutage.ts"

/**
 * A chat's conversations, one open per forum topic (`threadId`, null: General or no topics): the
 * open one gives the LLM its context; /new closes it.
 */
export class Conversations extends Context.Service<Conversations, {
  /** The topic's open conversation (its uuid), opened now if there is none. */
  readonly current: (chatId: number, threadId: number | null, userId: number | null) => Effect.Effect<string, StorageOutage>
  /** Closes the topic's open conversation (/new) and opens another, in one transaction; returns its uuid. */
  readonly startNew: (chatId: number, threadId: number | null, userId: number | null) => Effect.Effect<string, StorageOutage>
  /**
   * Answered exchanges of the conversation before the given message, newest first, at most
   * `limit`; a question is its message's text with the texts merged into it, with its sender.
   */
  readonly history: (
    conversationId: string,
    beforeMessageId: number,
    limit: number
  ) => Effect.Effect<ReadonlyArray<Exchange>, StorageOutage>
  /** The user's id and display name (first and last name, else @username), or null when unknown. */
  readonly sender: (userId: number | null) => Effect.Effect<Sender | null, StorageOutage>
}>()("bot/Conversations") {
  static readonly layer = Layer.effect(
    Conversations,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient

      // One statement: the open conversation, or a new one (the insert's row when it made one).
      const open = (chatId: number, thread: number, userId: number | null) =>
        sql<{ id: string }>`
          with opened as (
            insert into conversations (chat_id, thread_id, user_id) values (${chatId}, ${thread}, ${userId})
            on conflict (chat_id, thread_id) where ended_at is null do nothing
            returning id
          )
          select id from opened
          union all
          select id from conversations where chat_id = ${chatId} and thread_id = ${thread} and ended_at is null
          limit 1`.pipe(Effect.map((rows) => rows[0]!.id))

      const displayName = sql.literal(
        "coalesce(nullif(trim(u.first_name || ' ' || coalesce(u.last_name, '')), ''), '@' || u.username)"
      )
      const senderOf = (row: { readonly user_id: string | null; readonly name: string | null }): Sender | null =>
        row.user_id === null ? null : { id: Number(row.user_id), name: row.name ?? "" }

      return Conversations.of({
        current: Effect.fn("Conversations.current")(function*(chatId: number, threadId: number | null, userId: number | null) {
          return yield* open(chatId, threadId ?? 0, userId).pipe(Effect.mapError(storageOutage))
        }),
        startNew: Effect.fn("Conversations.startNew")(function*(chatId: number, threadId: number | null, userId: number | null) {
          const thread = threadId ?? 0
          return yield* sql.withTransaction(
            sql`
              update conversations set ended_at = now()
              where chat_id = ${chatId} and thread_id = ${thread} and ended_at is null`.pipe(
              Effect.andThen(open(chatId, thread, userId))
            )
          ).pipe(Effect.mapError(storageOutage))
        }),
        history: Effect.fn("Conversations.history")(
          function*(conversationId: string, beforeMessageId: number, limit: number) {
            const rows = yield* sql<{ text: string; answer: string; user_id: string | null; name: string | null }>`
              select m.text || coalesce(
                  (select string_agg(E'\n\n' || f.text, '' order by f.id) from messages f where f.merged_into = m.id), ''
                ) as text, m.answer, m.user_id, ${displayName} as name
              from messages m left join users u on u.id = m.user_id
              where m.conversation_id = ${conversationId} and m.status = 'answered' and m.id < ${beforeMessageId}
              order by m.id desc limit ${limit}`.pipe(Effect.mapError(storageOutage))
            return rows.map((row) => ({ question: row.text, answer: row.answer, sender: senderOf(row) }))
          }
        ),
        sender: Effect.fn("Conversations.sender")(function*(userId: number | null) {
          if (userId === null) return null
          const rows = yield* sql<{ user_id: string; name: string | null }>`
            select u.id as user_id, ${displayName} as name from users u where u.id = ${userId}`.pipe(Effect.mapError(storageOutage))
          return rows[0] ? senderOf(rows[0]) : { id: userId, name: "" }
        })
      })
    })
  )
}
