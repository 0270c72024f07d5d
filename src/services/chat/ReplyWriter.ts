import { Clock, Context, Effect, Layer } from "effect"
import { SendPacer } from "../telegram/SendPacer.ts"
import { type Button, type SendOptions, Telegram, type TelegramError, type UrlButton } from "../telegram/Telegram.ts"
import { maxMessageLength, type TelegramChunk, toTelegramChunks } from "../telegram/TelegramMarkdown.ts"
import { texts } from "./ChatTexts.ts"
import type { MailboxError } from "./Mailbox.ts"

/** Telegram takes about one message or edit per second per chat before answering 429. */
export const previewEveryMillis = 1_000
/** Shown at the end of a preview while the answer is still streaming. */
export const cursor = " ▍"

/** A reply being written: previews while the answer streams, then the final formatted text. */
export interface LiveReply {
  /** Shows the answer so far, at most once per `previewEveryMillis` (calls in between are dropped). */
  readonly preview: (markdown: string) => Effect.Effect<void, TelegramError | MailboxError>
  /**
   * Shows the final answer, split over as many messages as it needs, formatted, with `buttons`
   * under the last one; returns their ids.
   */
  readonly finish: (
    markdown: string,
    buttons?: ReadonlyArray<UrlButton>
  ) => Effect.Effect<ReadonlyArray<number>, TelegramError | MailboxError>
}

/** Where a reply goes and how it streams. */
export interface ReplyTarget {
  readonly chatId: number
  /** The forum topic every message, draft and edit of the reply belongs to. */
  readonly threadId?: number
  /** Private chats: the growing part streams as this animated draft, which the user may stop. */
  readonly draftId?: number
  /** Groups: the question the reply's first message answers (reply_parameters). */
  readonly replyTo?: number
  /** Groups: the callback data of a Stop button under the message still streaming. */
  readonly stopData?: string
}

/**
 * Writes a turn's reply into the chat: previews while the answer streams (a draft in private
 * chats, an edited message in groups), then the final text formatted and split over messages,
 * editing the messages an interrupted attempt already sent rather than sending them again.
 */
export class ReplyWriter extends Context.Service<ReplyWriter, {
  /**
   * A draft (private chats) streams the growing part instead of a message edited every second.
   * `existingIds` are the reply messages an interrupted attempt already sent: they are edited,
   * not sent again. `persistIds` stores the ids the moment a message exists, so a redo after a
   * crash finds them.
   */
  readonly open: (
    target: ReplyTarget,
    existingIds: ReadonlyArray<number>,
    persistIds: (ids: ReadonlyArray<number>) => Effect.Effect<void, MailboxError>
  ) => Effect.Effect<LiveReply>
}>()("bot/ReplyWriter") {
  static readonly layer = Layer.effect(
    ReplyWriter,
    Effect.gen(function*() {
      const telegram = yield* Telegram
      const pacer = yield* SendPacer

      const open = (
        { chatId, draftId, replyTo, stopData, threadId }: ReplyTarget,
        existingIds: ReadonlyArray<number>,
        persistIds: (ids: ReadonlyArray<number>) => Effect.Effect<void, MailboxError>
      ) =>
        Effect.sync((): LiveReply => {
          const ids = [...existingIds]
          // What each message shows now; unknown (null) for messages of an earlier attempt.
          const shown: Array<string | null> = ids.map(() => null)
          let lastPreviewAt = Number.NEGATIVE_INFINITY

          const placement = {
            ...(threadId !== undefined ? { threadId } : {}),
            ...(replyTo !== undefined ? { replyTo } : {})
          }
          const stopButtons: ReadonlyArray<Button> = stopData !== undefined ? [{ text: texts.stopButton, data: stopData }] : []

          // Sent and stored as one step: interrupted between the two, a redo would not know the
          // message exists and would send a second one. Only the first message replies to the question.
          const send = (index: number, text: string, options: SendOptions) =>
            Effect.uninterruptible(Effect.gen(function*() {
              const { replyTo: _replyTo, ...inTopic } = placement
              ids[index] = yield* telegram.sendMessage(chatId, text, { ...options, ...(index === 0 ? placement : inTopic) })
              yield* persistIds(ids)
            }))

          /** Puts `text` in the index-th reply message, sending it if it does not exist yet. */
          const show = (index: number, text: string, options: SendOptions) =>
            Effect.gen(function*() {
              const key = JSON.stringify([text, options.html === true, options.buttons ?? []])
              if (shown[index] === key) return
              const existing = ids[index]
              if (existing === undefined) yield* send(index, text, options)
              else {
                yield* telegram.editMessageText(chatId, existing, text, options).pipe(
                  // The user deleted the reply an earlier attempt sent: send it anew.
                  Effect.catchTag("MessageGone", () => send(index, text, options))
                )
              }
              shown[index] = key
            })

          /** Formatted, or as plain text when Telegram refuses the formatting: never lost. */
          const showFinal = (index: number, chunk: TelegramChunk, buttons: ReadonlyArray<Button> = []) =>
            show(index, chunk.html, { html: true, buttons }).pipe(
              Effect.catchTag("RejectedFormatting", () => show(index, chunk.plain, { buttons }))
            )

          const showPreview = Effect.fn("ReplyWriter.preview")(function*(markdown: string) {
            const chunks = toTelegramChunks(markdown, maxMessageLength - cursor.length)
            const last = chunks.length - 1
            if (last < 0) return
            // Earlier chunks are complete: show them formatted; the growing one as plain text, in
            // a draft where the chat has them and no message of an earlier attempt is there.
            for (let i = 0; i < last; i++) yield* showFinal(i, chunks[i]!)
            const growing = chunks[last]!.plain + cursor
            if (draftId !== undefined && ids[last] === undefined) {
              yield* telegram.sendDraft(chatId, draftId, growing, { ...(threadId !== undefined ? { threadId } : {}), canStop: true })
            } else yield* show(last, growing, { preview: true, buttons: stopButtons })
          }, (effect) =>
            // A preview that could not be shown is skipped: the final text is what must arrive.
            effect.pipe(Effect.catchTag(["TelegramApiError", "RejectedFormatting", "MessageGone", "ChatMigrated"], (error) =>
              Effect.logDebug("preview skipped", error.message))))

          const preview = (markdown: string) =>
            Effect.gen(function*() {
              const now = yield* Clock.currentTimeMillis
              // Previews are optional: under a send backlog they give way to final answers.
              if (now - lastPreviewAt < previewEveryMillis || (yield* pacer.congested)) return
              lastPreviewAt = now
              yield* showPreview(markdown)
            })

          const finish = Effect.fn("ReplyWriter.finish")(function*(markdown: string, buttons: ReadonlyArray<UrlButton> = []) {
            const chunks = toTelegramChunks(markdown)
            const final = chunks.length > 0 ? chunks : toTelegramChunks(texts.empty)
            // The buttons go under the last message, where the reply ends.
            for (let i = 0; i < final.length; i++) yield* showFinal(i, final[i]!, i === final.length - 1 ? buttons : [])
            // A redo whose answer came out shorter than the first attempt's: drop the leftovers.
            while (ids.length > final.length) {
              const extra = ids.pop()!
              shown.pop()
              // Already gone, or Telegram refusing: the extra message stays, the answer is complete.
              yield* telegram.deleteMessage(chatId, extra).pipe(
                Effect.catchTag(["TelegramApiError", "MessageGone"], () => Effect.void)
              )
              yield* persistIds(ids)
            }
            return [...ids] as ReadonlyArray<number>
          })

          return { preview, finish }
        }).pipe(Effect.withSpan("ReplyWriter.open"))

      return ReplyWriter.of({ open })
    })
  )
}
