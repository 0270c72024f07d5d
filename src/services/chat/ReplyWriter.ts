import { Clock, Context, Deferred, Duration, Effect, Layer, type Scope } from "effect"
import { SendBudget, SendPriority } from "../telegram/SendBudget.ts"
import { type Button, type SendOptions, Telegram, type TelegramError, type UrlButton } from "../telegram/Telegram.ts"
import { maxMessageLength, type TelegramChunk, toTelegramChunks } from "../telegram/TelegramMarkdown.ts"
import { texts } from "./ChatTexts.ts"
import type { MailboxError } from "./Mailbox.ts"

/** Telegram takes about one message or edit per second per chat before answering 429. */
export const previewEveryMillis = 1_000
/** Telegram shows "typing…" for about 5 s: renewed every 4 s while there is no text to show. */
export const typingEveryMillis = 4_000
/** Shown at the end of a preview while the answer is still streaming. */
export const cursor = " ▍"

/** A reply being written: signs of progress while the answer streams, then the final formatted text. */
export interface LiveReply {
  /**
   * Shows the reply coming until the scope closes (the LLM is done): "typing…" while there is no
   * text (renewed every `typingEveryMillis`), then the latest `preview` text, at most once per
   * `previewEveryMillis`. Each sign waits for its turn of the send budget, at priority "first"
   * until the chat has seen one, "update" after, without holding up the caller; what it shows is
   * chosen when its turn comes (the text of then, typing only while there is none).
   */
  readonly showProgress: Effect.Effect<void, never, Scope.Scope>
  /**
   * The answer so far, for `showProgress` to show. Fails with what made a sign fail for good (the
   * chat unreachable, the mailbox away): the reply cannot go on. A sign Telegram refuses is skipped.
   */
  readonly preview: (markdown: string) => Effect.Effect<void, TelegramError | MailboxError>
  /**
   * Shows the final answer, split over as many messages as it needs, formatted, with `buttons`
   * under the last one; returns their ids. Paid at priority "final".
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
      const budget = yield* SendBudget

      const open = (
        { chatId, draftId, replyTo, stopData, threadId }: ReplyTarget,
        existingIds: ReadonlyArray<number>,
        persistIds: (ids: ReadonlyArray<number>) => Effect.Effect<void, MailboxError>
      ) =>
        Effect.sync((): LiveReply => {
          const ids = [...existingIds]
          // What each message shows now; unknown (null) for messages of an earlier attempt.
          const shown: Array<string | null> = ids.map(() => null)

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

          // The progress shown so far, and the latest text to show.
          const progress = {
            latest: "",
            shown: "",
            previewAt: Number.NEGATIVE_INFINITY,
            typingAt: Number.NEGATIVE_INFINITY,
            // A chat showing an earlier attempt's messages has seen a sign already.
            seen: existingIds.length > 0,
            failure: undefined as TelegramError | MailboxError | undefined,
            changed: Deferred.makeUnsafe<void>()
          }

          /** The sign due when the turn came: the latest text, or typing while there is none. */
          const sign = Effect.gen(function*() {
            const now = yield* Clock.currentTimeMillis
            if (progress.latest.length === 0) {
              progress.typingAt = now
              yield* telegram.sendTyping(chatId, threadId).pipe(Effect.ignore)
            } else {
              progress.previewAt = now
              progress.shown = progress.latest
              yield* showPreview(progress.latest)
            }
            progress.seen = true
          })

          /** One step of showProgress: waits for the next sign to be due, then for its turn, then shows it. */
          const step = Effect.gen(function*() {
            const now = yield* Clock.currentTimeMillis
            const text = progress.latest.length > 0
            if (text && progress.latest === progress.shown) return yield* Deferred.await(progress.changed)
            const due = text ? progress.previewAt + previewEveryMillis : progress.typingAt + typingEveryMillis
            // Waiting for typing, text may come (and is due at once).
            if (now < due) return yield* Effect.raceFirst(Effect.sleep(Duration.millis(due - now)), Deferred.await(progress.changed))
            const priority = progress.seen ? "update" as const : "first" as const
            yield* budget.prepaid(chatId, priority, sign).pipe(Effect.provideService(SendPriority, priority))
          })

          const showProgress = Effect.forkScoped(
            Effect.forever(step).pipe(
              Effect.catchTag("TelegramApiError", (error) => Effect.logDebug("progress not shown", error.message)),
              Effect.catch((error) => Effect.sync(() => void (progress.failure = error)))
            )
          ).pipe(Effect.asVoid, Effect.withSpan("ReplyWriter.showProgress"))

          const preview = (markdown: string) =>
            Effect.suspend(() => {
              if (progress.failure !== undefined) return Effect.fail(progress.failure)
              progress.latest = markdown
              const changed = progress.changed
              progress.changed = Deferred.makeUnsafe<void>()
              return Deferred.succeed(changed, undefined).pipe(Effect.asVoid)
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

          return { showProgress, preview, finish }
        }).pipe(Effect.withSpan("ReplyWriter.open"))

      return ReplyWriter.of({ open })
    })
  )
}
