import { Context, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import type { Exchange, Sender } from "../llm/Prompt.ts"
import { type StorageOutage, storageOutage } from "../platform/StorageOutage.ts"

/**
 * A chat's conversations, one open per forum topic (`threadId`, null: General or no topics): the
 * open one gives the LLM its context; /new closes it.
 */
export class Conversations extends Context.Service<Conversations, {
  /**
   * The topic's open conversation (its uuid, opened now if there is none) and its answered
   * exchanges before the message `beforeMessageId`, newest first, at most `limit`; a question is
   * its message's text with the texts merged into it, with its sender. One round trip.
   */
  readonly recall: (
    where: { readonly chatId: number; readonly threadId: number | null; readonly userId: number | null },
    beforeMessageId: number,
    limit: number
  ) => Effect.Effect<{ readonly conversationId: string; readonly history: ReadonlyArray<Exchange> }, StorageOutage>
  /** Closes the topic's open conversation (/new) and opens another, in one transaction; returns its uuid. */
  readonly startNew: (chatId: number, threadId: number | null, userId: number | null) => Effect.Effect<string, StorageOutage>
  /** The user's id and display name (first and last name, else @username), or null when unknown. */
  readonly sender: (userId: number | null) => Effect.Effect<Sender | null, StorageOutage>
}>()("bot/Conversations") {
  static readonly layer = Layer.effect(
    Conversations,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient

      // `current`: the open conversation, or a new one (the insert's row when it made one). A
      // data-modifying WITH must be the statement's own: these are the first of its WITH list.
      const currentConversation = (chatId: number, thread: number, userId: number | null) =>
        sql`
          opened as (
            insert into conversations (chat_id, thread_id, user_id) values (${chatId}, ${thread}, ${userId})
            on conflict (chat_id, thread_id) where ended_at is null do nothing
            returning id
          ),
          current as (
            select id from opened
            union all
            select id from conversations where chat_id = ${chatId} and thread_id = ${thread} and ended_at is null
            limit 1
          )`
      const open = (chatId: number, thread: number, userId: number | null) =>
        sql<{ id: string }>`with ${currentConversation(chatId, thread, userId)} select id from current`.pipe(
          Effect.map((rows) => rows[0]!.id)
        )

      const displayName = sql.literal(
        "coalesce(nullif(trim(u.first_name || ' ' || coalesce(u.last_name, '')), ''), '@' || u.username)"
      )
      const senderOf = (row: { readonly user_id: string | null; readonly name: string | null }): Sender | null =>
        row.user_id === null ? null : { id: Number(row.user_id), name: row.name ?? "" }

      return Conversations.of({
        recall: Effect.fn("Conversations.recall")(function*({ chatId, threadId, userId }, beforeMessageId: number, limit: number) {
          // A conversation opened by this statement has no exchanges: the join finds none.
          const rows = yield* sql<{ conversation_id: string; text: string | null; answer: string | null; user_id: string | null; name: string | null }>`
            with ${currentConversation(chatId, threadId ?? 0, userId)}
            select c.id as conversation_id, h.text, h.answer, h.user_id, h.name
            from current c left join lateral (
              select m.id, m.text || coalesce(
                  (select string_agg(E'\n\n' || f.text, '' order by f.id) from messages f where f.merged_into = m.id), ''
                ) as text, m.answer, m.user_id, ${displayName} as name
              from messages m left join users u on u.id = m.user_id
              where m.conversation_id = c.id and m.status = 'answered' and m.id < ${beforeMessageId}
              order by m.id desc limit ${limit}
            ) h on true
            order by h.id desc`.pipe(Effect.mapError(storageOutage))
          const history = rows.flatMap((row) =>
            row.text === null ? [] : [{ question: row.text, answer: row.answer ?? "", sender: senderOf(row) }]
          )
          return { conversationId: rows[0]!.conversation_id, history }
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
