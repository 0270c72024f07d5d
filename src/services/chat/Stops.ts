import { Context, Deferred, Duration, Effect, Layer } from "effect"
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
 * How often the answers streaming in a process look for a stop, all in one query: a press lands
 * in Postgres, maybe from another process. One query per answer per second was about 900 of a
 * 300-chat burst's 5,700 statements (issue 10).
 */
const stopCheckEvery = Duration.seconds(1)

interface Watch {
  readonly mailId: number
  readonly stopped: Deferred.Deferred<void>
}

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
  /**
   * Ends when a stop is asked for the message: the process looks once a second, for every answer
   * streaming in it together, so a stop is seen within a second of its press. Postgres away while
   * looking: no stop; the answer goes on.
   */
  readonly awaitStop: (mailId: number) => Effect.Effect<void>
}>()("bot/Stops") {
  static readonly layer = Layer.effect(
    Stops,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const telegram = yield* Telegram

      const watches = new Set<Watch>()
      const lookForStops = Effect.gen(function*() {
        if (watches.size === 0) return
        const ids = [...new Set(Array.from(watches, (watch) => watch.mailId))]
        const rows = yield* sql<{ id: string }>`
          select id from messages where id = any(${ids}::bigint[]) and stop_requested_at is not null`
        const stopped = new Set(rows.map((row) => Number(row.id)))
        for (const watch of watches) {
          if (stopped.has(watch.mailId)) yield* Deferred.succeed(watch.stopped, undefined)
        }
      }).pipe(Effect.ignore)
      yield* Effect.forkScoped(Effect.forever(Effect.andThen(Effect.sleep(stopCheckEvery), lookForStops)))

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
        awaitStop: (mailId: number) =>
          Effect.gen(function*() {
            const watch: Watch = { mailId, stopped: yield* Deferred.make<void>() }
            yield* Effect.sync(() => watches.add(watch))
            yield* Deferred.await(watch.stopped).pipe(Effect.ensuring(Effect.sync(() => watches.delete(watch))))
          })
      })
    })
  )
}
