import { Clock, Context, Deferred, Duration, Effect, Layer, type Scope } from "effect"
import { SendBudget, SendPriority } from "../telegram/SendBudget.ts"
import { type Button, type SendOptions, Telegram, type TelegramError, type UrlButton } from "../telegram/Telegram.ts"
import { maxMessageLength, type TelegramChunk, toTelegramChunks } from "../telegram/TelegramMarkdown.ts"
import { texts } from "./ChatTexts.ts"
import type { MailboxError, MailTakenOver } from "./Mailbox.ts"

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
   * `previewEveryMillis`. Each sign waits for its turn of the send budget without holding up the
   * caller: the reply's first text at priority "first", typing and later texts at "update" (text
   * is what a user sees most: typing for one chat never holds up another's first text; issue 10).
   * A text sign shows the latest text as of when its turn came; typing waits for its turn only
   * until text comes.
   */
  readonly showProgress: Effect.Effect<void, never, Scope.Scope>
  /**
   * The answer so far, for `showProgress` to show. Fails with what made a sign fail for good (the
   * chat unreachable, the mail taken over by another turn): the reply cannot go on. A sign Telegram refuses (or asks to wait over 30 s
   * for) is skipped.
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
   * crash finds them. Its sends keep to the chat's pace as other processes left it (SendBudget.catchUp).
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
        // The chat's sends also keep to what other processes sent it (its previous turn's).
        budget.catchUp(chatId).pipe(Effect.andThen(Effect.sync((): LiveReply => {
          const ids = [...existingIds]
          // What each message shows now; unknown (null) for messages of an earlier attempt.
          const shown: Array<string | null> = ids.map(() => null)

          const placement = {
            ...(threadId !== undefined ? { threadId } : {}),
            ...(replyTo !== undefined ? { replyTo } : {})
          }
          const stopButtons: ReadonlyArray<Button> = stopData !== undefined ? [{ text: texts.stopButton, data: stopData }] : []

          // Sent and stored as one step: interrupted between the two, a redo would not know the
          // message exists and would send a second one. The turn is taken before (interruptibly:
          // a wait for the budget must not hold up whoever stops this). Only the first message
          // replies to the question.
          const send = (index: number, text: string, options: SendOptions) =>
            Effect.gen(function*() {
              const { replyTo: _replyTo, ...inTopic } = placement
              yield* budget.prepaid(chatId, Effect.uninterruptible(Effect.gen(function*() {
                ids[index] = yield* telegram.sendMessage(chatId, text, { ...options, ...(index === 0 ? placement : inTopic) })
                yield* persistIds(ids)
              })))
            })

          /**
           * Puts `text` in the index-th reply message, sending it if it does not exist yet; false
           * when it shows that already (no call). A preview does not send anew a message the user
           * deleted: the final text will.
           */
          const show = (index: number, text: string, options: SendOptions) =>
            Effect.gen(function*() {
              const key = JSON.stringify([text, options.html === true, options.buttons ?? []])
              if (shown[index] === key) return false
              const existing = ids[index]
              if (existing === undefined) yield* send(index, text, options)
              else {
                yield* telegram.editMessageText(chatId, existing, text, options).pipe(
                  // The user deleted the reply an earlier attempt sent: send it anew.
                  Effect.catchTag("MessageGone", (gone) => (options.preview === true ? Effect.fail(gone) : send(index, text, options)))
                )
              }
              shown[index] = key
              return true
            })

          /** Formatted, or (the final text) as plain text when Telegram refuses the formatting: never lost. */
          const showFinal = (index: number, chunk: TelegramChunk, buttons: ReadonlyArray<Button> = [], preview = false) =>
            show(index, chunk.html, { html: true, buttons, ...(preview ? { preview } : {}) }).pipe(
              Effect.catchTag("RejectedFormatting", (refused) => (preview ? Effect.fail(refused) : show(index, chunk.plain, { buttons })))
            )

          /**
           * One call at most (a sign is one turn of the budget): the first earlier chunk not shown
           * yet as it is now complete, formatted; else the growing one as plain text, in a draft
           * where the chat has them and no message of an earlier attempt is there.
           */
          const showPreview = Effect.fn("ReplyWriter.preview")(function*(markdown: string) {
            const chunks = toTelegramChunks(markdown, maxMessageLength - cursor.length)
            const last = chunks.length - 1
            if (last < 0) return
            for (let i = 0; i < last; i++) if (yield* showFinal(i, chunks[i]!, [], true)) return
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
            previewed: "",
            previewAt: Number.NEGATIVE_INFINITY,
            typingAt: Number.NEGATIVE_INFINITY,
            // The chat has seen text of the reply (an earlier attempt's messages included).
            shownText: existingIds.length > 0,
            // The chat cannot be written to (blocked, gone), or another turn took the mail over: the reply ends.
            failure: undefined as TelegramError | MailTakenOver | undefined,
            // A sent message's id could not be stored (the mailbox away): the final text stores it.
            unsaved: false,
            changed: Deferred.makeUnsafe<void>()
          }

          /**
           * The latest text as of when its turn came. Not cut off from then: a cancelled edit may
           * still land after the final one.
           */
          const showText = Effect.uninterruptible(Effect.gen(function*() {
            progress.previewAt = yield* Clock.currentTimeMillis
            progress.previewed = progress.latest
            progress.shownText = true
            yield* showPreview(progress.latest)
          }))

          /**
           * "typing…", at priority "update": a chat action counts for the bot only, so it waits for
           * no chat's pace. Refused (a wait over 30 s) or failed, it is skipped until it is due again.
           */
          const typing = budget.prepaid(chatId, telegram.sendTyping(chatId, threadId), "sendChatAction").pipe(
            Effect.ignore,
            Effect.andThen(Clock.currentTimeMillis),
            Effect.map((now) => void (progress.typingAt = now)),
            Effect.provideService(SendPriority, "update")
          )

          /** One step of showProgress: waits for the next sign to be due, then for its turn, then shows it. */
          const step = Effect.gen(function*() {
            const now = yield* Clock.currentTimeMillis
            const text = progress.latest.length > 0
            if (text && progress.latest === progress.previewed) return yield* Deferred.await(progress.changed)
            const due = text ? progress.previewAt + previewEveryMillis : progress.typingAt + typingEveryMillis
            if (now < due) {
              const rest = Effect.sleep(Duration.millis(due - now))
              // Waiting to renew typing, text may come (and is due at once).
              return yield* (text ? rest : Effect.raceFirst(rest, Deferred.await(progress.changed)))
            }
            // Typing waits for its turn only until text comes: then the text waits, at its own priority.
            if (!text) return yield* Effect.raceFirst(typing, Deferred.await(progress.changed))
            yield* budget.prepaid(chatId, showText).pipe(
              Effect.provideService(SendPriority, progress.shownText ? "update" : "first"),
              // The chat (or bot) must wait over 30 s: no sign until then; the final text will wait.
              Effect.catchTag("TelegramApiError", (error) =>
                Effect.logDebug("progress not shown", error.message).pipe(Effect.andThen(Effect.sleep("1 second")))),
              Effect.catchTag("StorageOutage", () => Effect.sync(() => void (progress.unsaved = true)))
            )
          })

          const showProgress = Effect.forkScoped(
            Effect.forever(step).pipe(Effect.catch((error) => Effect.sync(() => void (progress.failure = error))))
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
            // A sign already found the chat unreachable (or the mail taken over): do not write again.
            if (progress.failure !== undefined) return yield* Effect.fail(progress.failure)
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
            if (progress.unsaved) yield* persistIds(ids)
            return [...ids] as ReadonlyArray<number>
          })

          return { showProgress, preview, finish }
        }))).pipe(Effect.withSpan("ReplyWriter.open"))

      return ReplyWriter.of({ open })
    })
  )
}
