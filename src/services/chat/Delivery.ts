import { Context, Effect, Layer, Option, Schema } from "effect"
import type { QueueOutage } from "../platform/JobQueue.ts"
import { type ChatMigrated, isTransient, type TelegramApiError, type TelegramError, type UrlButton } from "../telegram/Telegram.ts"
import { ChatMigration } from "./ChatMigration.ts"
import { type Mail, Mailbox, type MailboxError, type TurnRecord } from "./Mailbox.ts"
import type { LiveReply } from "./ReplyWriter.ts"

/**
 * Telegram is away (or asked to wait longer than a turn should sit out): the message went back
 * to the mailbox, with the LLM's answer if there was one, for a later turn to deliver.
 */
export class DeliveryPostponed extends Schema.TaggedError<DeliveryPostponed>()("DeliveryPostponed", {
  message: Schema.String
}) {}

/**
 * How a turn's mail ended: answered, failed for good, unreachable (the chat is gone), skipped
 * (no reply was due: silenced past the updates limit, or "text only" said already), or moved
 * (the group became a supergroup: the new chat's turn delivers it).
 */
export type TurnOutcome = "answered" | "failed" | "unreachable" | "skipped" | "moved"

/** The record of a reply made without the LLM (a command, a notice, an answer kept from before). */
export const withoutLlm = (text: string, conversationId: string | null = null): TurnRecord => ({
  answer: text,
  conversationId,
  model: null,
  tokensIn: 0,
  tokensOut: 0,
  latencyMs: 0,
  ttftMs: null
})

/**
 * The delivery policy: what becomes of a message when Telegram takes, postpones or refuses its
 * reply. Nothing accepted is lost (Telegram away: the message waits, with its answer) and nothing
 * is answered twice (a redo delivers the kept answer); permanent errors are not retried.
 */
export class Delivery extends Context.Service<Delivery, {
  /**
   * Shows `text` as the final reply and records the turn as answered. Telegram away: the message
   * and `record` go back to the mailbox (DeliveryPostponed). Telegram refusing the reply itself
   * (another 4xx): the message fails, its LLM usage recorded.
   */
  readonly deliver: (
    mail: Mail,
    reply: LiveReply,
    text: string,
    record: TurnRecord,
    buttons?: ReadonlyArray<UrlButton>
  ) => Effect.Effect<TurnOutcome, MailboxError | DeliveryPostponed | QueueOutage | TelegramError>
  /**
   * Hands the message back (with the LLM's answer, if any) for a later turn, and fails with
   * DeliveryPostponed. A flood wait does not count as an attempt (Telegram said when to come
   * back); an outage does, so retries stay bounded.
   */
  readonly postpone: (
    mail: Mail,
    error: TelegramApiError,
    answered?: TurnRecord
  ) => Effect.Effect<never, MailboxError | DeliveryPostponed>
  /**
   * A Telegram failure anywhere in a turn: an unreachable chat is marked and its mail skipped;
   * Telegram away (timeouts, 5xx, a long flood wait) postpones; a group that became a supergroup
   * moves there with the message (and its answer, if any), to be delivered there once; Telegram
   * refusing the request (other 4xx, formatting refused even as plain text, a message gone)
   * fails the message for good.
   */
  readonly onTelegramFailure: (
    mail: Mail,
    error: TelegramError
  ) => Effect.Effect<TurnOutcome, MailboxError | DeliveryPostponed | QueueOutage>
}>()("bot/Delivery") {
  static readonly layer = Layer.effect(
    Delivery,
    Effect.gen(function*() {
      const mailbox = yield* Mailbox
      const migration = yield* ChatMigration

      /**
       * The message goes back to the mailbox with its answer, uncounted, then moves with its chat:
       * the new chat's turn delivers the answer without asking the LLM again. The reply messages
       * an attempt sent in the old group stay there.
       */
      const moved = (mail: Mail, error: ChatMigrated, answered?: TurnRecord) =>
        Effect.gen(function*() {
          yield* mailbox.release(mail, { countAttempt: false, ...(answered ? { answered } : {}) })
          yield* migration.move(error.chatId, error.toChatId)
          return "moved" as const
        })

      const postpone = Effect.fn("Delivery.postpone")(function*(mail: Mail, error: TelegramApiError, answered?: TurnRecord) {
        yield* mailbox.release(mail, { countAttempt: error.code !== 429, ...(answered ? { answered } : {}) })
        return yield* new DeliveryPostponed({ message: `Telegram: ${error.message}` })
      })

      /** Telegram refused the reply itself (a 4xx, or even the plain text): the message fails. */
      const refused = (mail: Mail, error: TelegramError, record: Option.Option<TurnRecord>) =>
        mailbox.fail(mail, `Telegram: ${error.message}`, record).pipe(
          Effect.andThen(Effect.logWarning("Telegram refused the reply", error.message)),
          Effect.as("failed" as const)
        )

      return Delivery.of({
        postpone,
        deliver: Effect.fn("Delivery.deliver")(
          function*(mail: Mail, reply: LiveReply, text: string, record: TurnRecord, buttons: ReadonlyArray<UrlButton> = []) {
            return yield* reply.finish(text, buttons).pipe(
              Effect.andThen(mailbox.complete(mail, record)),
              Effect.as("answered" as const),
              Effect.catchTag("TelegramApiError", (error) =>
                isTransient(error) ? postpone(mail, error, record) : refused(mail, error, Option.some(record))),
              Effect.catchTag("ChatMigrated", (error) => moved(mail, error, record))
            )
          }
        ),
        onTelegramFailure: Effect.fn("Delivery.onTelegramFailure")(function*(mail: Mail, error: TelegramError) {
          switch (error._tag) {
            case "UnreachableChat":
              yield* mailbox.markUnreachable(mail.chatId, error.message)
              yield* Effect.logInfo("chat unreachable, its mail is skipped", error.message)
              return "unreachable" as const
            case "TelegramApiError":
              return isTransient(error) ? yield* postpone(mail, error) : yield* refused(mail, error, Option.none())
            case "ChatMigrated":
              return yield* moved(mail, error)
            case "RejectedFormatting":
            case "MessageGone":
              return yield* refused(mail, error, Option.none())
          }
        })
      })
    })
  )
}
