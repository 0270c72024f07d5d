import { Context, Effect, Layer, Option } from "effect"
import { SqlClient } from "effect/sql"
import type { UrlButton } from "../telegram/Telegram.ts"
import { JobQueue, type QueueOutage } from "../platform/JobQueue.ts"
import { storable, storableJson } from "../platform/Storable.ts"
import { type StorageOutage, storageOutage } from "../platform/StorageOutage.ts"

/** Something the bot tells a user on its own (a subscription activated, a payment failed...). */
export interface Notice {
  readonly userId: number
  /** Once per key: the same notice from a replayed or repeated event is not told twice. */
  readonly key: string
  /** Markdown, like an answer. */
  readonly text: string
  readonly buttons: ReadonlyArray<UrlButton>
}

/**
 * Notices wait in the user's private chat's mailbox like messages, so the chat's worker tells
 * them once, in order with the conversation, paced like any send, and redoes them after a crash.
 */
export class Notices extends Context.Service<Notices, {
  /**
   * Puts the notice in the mailbox of the user's private chat (in the caller's transaction),
   * once per key. Returns the chat to wake, or None when it was told before or the user never
   * opened a chat with the bot.
   */
  readonly add: (notice: Notice) => Effect.Effect<Option.Option<number>, StorageOutage>
  /** Wakes the chats of added notices (after the transaction committed; the sweeper is the fallback). */
  readonly wake: (chatIds: ReadonlyArray<number>) => Effect.Effect<void, QueueOutage>
}>()("bot/Notices") {
  static readonly layer = Layer.effect(
    Notices,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const queue = yield* JobQueue
      return Notices.of({
        add: Effect.fn("Notices.add")(function*(notice: Notice) {
          // In a private chat the chat id is the user's id.
          const rows = yield* sql<{ chat_id: bigint }>`
            insert into messages (chat_id, user_id, kind, text, buttons, notice_key)
            select id, ${notice.userId}, 'notice', ${storable(notice.text)}, ${JSON.stringify(storableJson(notice.buttons))}::jsonb,
              ${notice.key}
            from chats where id = ${notice.userId}
            on conflict (notice_key) do nothing
            returning chat_id`.pipe(Effect.mapError(storageOutage))
          const chat = Option.map(Option.fromNullishOr(rows[0]), (row) => Number(row.chat_id))
          if (Option.isNone(chat)) {
            yield* Effect.logInfo("notice not queued: told before, or the user has no private chat with the bot").pipe(
              Effect.annotateLogs({ user_id: notice.userId, notice: notice.key })
            )
          }
          return chat
        }),
        wake: Effect.fn("Notices.wake")(function*(chatIds: ReadonlyArray<number>) {
          if (chatIds.length > 0) yield* queue.wake([...new Set(chatIds)])
        })
      })
    })
  )
}
