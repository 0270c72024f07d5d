import { Context, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { type StorageOutage, storageOutage } from "../platform/StorageOutage.ts"
import { Telegram } from "../telegram/Telegram.ts"
import { texts } from "./ChatTexts.ts"

/**
 * A draft's id for a message (private chats): non-zero, one per message, the same on a redo, so
 * a stop pressed on it names the message. Stops.fromDraft computes the same in SQL.
 */
export const draftIdOf = (mailId: number): number => (mailId % 2_147_483_646) + 1

/**
 * Stop requests for answers being streamed (Bot API 10.3 drafts' stop, or the inline Stop button
 * in groups): noted with the message, which the turn answering it checks while it streams.
 */
export class Stops extends Context.Service<Stops, {
  /** A stopped_message_generation update: the message whose draft it is, if still being answered, is to stop. */
  readonly fromDraft: (chatId: number, draftId: number) => Effect.Effect<void, StorageOutage>
  /**
   * The Stop button pressed by `userId`: only the asker may stop their answer. The press is
   * answered (answerCallbackQuery) with what happened, without waiting for Telegram; Telegram
   * failing that is only logged. Pressed again (a redelivery), the same answer is given.
   */
  readonly fromButton: (
    press: { readonly callbackQueryId: string; readonly chatId: number; readonly userId: number; readonly mailId: number }
  ) => Effect.Effect<void, StorageOutage>
  /** Whether a stop was asked for the message. */
  readonly requested: (mailId: number) => Effect.Effect<boolean, StorageOutage>
}>()("bot/Stops") {
  static readonly layer = Layer.effect(
    Stops,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const telegram = yield* Telegram

      return Stops.of({
        fromDraft: Effect.fn("Stops.fromDraft")(function*(chatId: number, draftId: number) {
          yield* sql`
            update messages set stop_requested_at = now()
            where chat_id = ${chatId} and status = 'processing' and (id % 2147483646) + 1 = ${draftId}`.pipe(
            Effect.mapError(storageOutage)
          )
        }),
        fromButton: Effect.fn("Stops.fromButton")(function*(press) {
          const rows = yield* sql<{ asker: boolean; streaming: boolean }>`
            with target as (
              select id, user_id = ${press.userId} as asker, status = 'processing' as streaming
              from messages where id = ${press.mailId} and chat_id = ${press.chatId}
            ),
            stopped as (
              update messages set stop_requested_at = now()
              where id = (select id from target where asker and streaming)
            )
            select asker, streaming from target`.pipe(Effect.mapError(storageOutage))
          const target = rows[0]
          const notice = target === undefined || !target.streaming
            ? texts.stopTooLate
            : target.asker
            ? texts.stopping
            : texts.stopNotYours
          // Answered on the side: the webhook's batch must not wait on Telegram.
          yield* telegram.answerCallbackQuery(press.callbackQueryId, notice).pipe(
            Effect.catch((error) => Effect.logWarning("could not answer the Stop button", error.message)),
            Effect.forkDetach
          )
        }),
        requested: Effect.fn("Stops.requested")(function*(mailId: number) {
          const rows = yield* sql<{ stop: boolean }>`
            select stop_requested_at is not null as stop from messages where id = ${mailId}`.pipe(
            Effect.mapError(storageOutage)
          )
          return rows[0]?.stop === true
        })
      })
    })
  )
}
