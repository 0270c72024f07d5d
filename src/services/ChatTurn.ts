import { Clock, Context, Effect, Layer, Metric, Option, Schedule, Schema, Stream } from "effect"
import { buildPrompt } from "../domain/Prompt.ts"
import { Ai, LlmError } from "./Ai.ts"
import { AppConfig } from "./AppConfig.ts"
import { Conversations } from "./Conversations.ts"
import { type Mail, Mailbox, type MailboxError, type TurnRecord } from "./Mailbox.ts"
import { turnDuration, turns } from "./Metrics.ts"
import { type LiveReply, ReplyWriter } from "./ReplyWriter.ts"
import { floodWaitError, isTransient, maxWaitSeconds, Telegram, type TelegramApiError } from "./Telegram.ts"

export const texts = {
  start: "Hi! I'm an AI assistant. Send me any message and I'll answer.\n\n/new starts a new conversation\n/help shows this help",
  help:
    "Write to me as you would to a person: I remember our conversation until you send /new.\n\n/new starts a new conversation (I forget the earlier one)\n/help shows this help",
  newConversation: "Started a new conversation: I won't use anything we said before.",
  overLimit: "You're sending messages faster than I can answer. Please wait a minute and try again.",
  failed: "Sorry, I couldn't answer that just now. Please try again in a moment.",
  cutOff: "\n\n_(The answer was cut off. Please ask again.)_"
} as const

/** A message that keeps failing (or crashing the worker) is given up after this many turns. */
const maxAttempts = 5
const historyLimit = 200
const typingEvery = Schedule.spaced("4 seconds")

/** Drafts are private-chat only; one non-zero id per message, the same on a redo. */
const draftIdOf = (mail: Mail): number => (mail.id % 2_147_483_646) + 1

type Command = "start" | "help" | "new"

const parseCommand = (text: string): Command | undefined => {
  const match = /^\/(start|help|new)(?:@\w+)?(?:\s|$)/i.exec(text.trim())
  return match ? (match[1]!.toLowerCase() as Command) : undefined
}

/**
 * Telegram is away (or asked to wait longer than a turn should sit out): the message went back
 * to the mailbox, with the LLM's answer if there was one, for a later turn to deliver.
 */
export class DeliveryPostponed extends Schema.TaggedError<DeliveryPostponed>()("DeliveryPostponed", {
  message: Schema.String
}) {}

/** One turn of a chat: the reply to one message of its mailbox. */
export class ChatTurn extends Context.Service<ChatTurn, {
  /**
   * Fails, leaving the message to be redone, when the database is away, when Telegram stays away
   * past its retries (DeliveryPostponed), or when another turn took the message over.
   */
  readonly run: (mail: Mail) => Effect.Effect<void, MailboxError | DeliveryPostponed>
}>()("bot/ChatTurn") {
  static readonly layer = Layer.effect(
    ChatTurn,
    Effect.gen(function*() {
      const config = yield* AppConfig
      const ai = yield* Ai
      const telegram = yield* Telegram
      const mailbox = yield* Mailbox
      const conversations = yield* Conversations
      const writer = yield* ReplyWriter

      /**
       * Hands the message back (with the LLM's answer, if any) for a later turn. A flood wait does
       * not count as an attempt: Telegram said when to come back. An outage does, so it stays bounded.
       */
      const postpone = (mail: Mail, error: TelegramApiError, answered?: TurnRecord) =>
        mailbox.release(mail, { countAttempt: error.code !== 429, ...(answered ? { answered } : {}) }).pipe(
          Effect.andThen(Effect.fail(new DeliveryPostponed({ message: `Telegram: ${error.message}` })))
        )

      /** Telegram refused the reply itself (a 4xx, or even the plain text): the message fails. */
      const refused = (mail: Mail, error: { readonly message: string }, record: Option.Option<TurnRecord>) =>
        mailbox.fail(mail, `Telegram: ${error.message}`, record).pipe(
          Effect.andThen(Effect.logWarning("Telegram refused the reply", error.message)),
          Effect.as("failed" as const)
        )

      /**
       * The final reply, then the turn's record. Telegram away: the message and answer go back.
       * Telegram refusing the reply itself (a 4xx): the message fails, its LLM usage recorded.
       */
      const deliver = (mail: Mail, reply: LiveReply, shown: string, record: TurnRecord) =>
        reply.finish(shown).pipe(
          Effect.andThen(mailbox.complete(mail, record)),
          Effect.as("answered" as const),
          Effect.catchTag("TelegramApiError", (error) =>
            isTransient(error) ? postpone(mail, error, record) : refused(mail, error, Option.some(record))
          )
        )

      /** A reply that needs no LLM (commands, notices, an answer kept from an earlier attempt). */
      const fixedReply = (mail: Mail, reply: LiveReply, text: string, conversationId: string | null = null) =>
        deliver(mail, reply, text, {
          answer: text,
          conversationId,
          model: null,
          tokensIn: 0,
          tokensOut: 0,
          latencyMs: 0,
          ttftMs: null
        })

      const answerWithLlm = (mail: Mail, reply: LiveReply, startedAt: number) =>
        Effect.gen(function*() {
          const conversationId = yield* conversations.current(mail.chatId, mail.userId)
          const history = yield* conversations.history(conversationId, mail.id, historyLimit)
          const prompt = buildPrompt(history, mail.text, config.contextTokenBudget - config.maxAnswerTokens)
          yield* Effect.forkScoped(telegram.sendTyping(mail.chatId).pipe(Effect.ignore, Effect.repeat(typingEvery)))

          let answer = ""
          let ttftMs: number | null = null
          let usage = { tokensIn: 0, tokensOut: 0 }
          const record = (now: number): TurnRecord => ({
            answer,
            conversationId,
            model: ai.model,
            ...usage,
            latencyMs: now - startedAt,
            ttftMs
          })

          const aiFailure = yield* ai.streamChat(prompt, { maxTokens: config.maxAnswerTokens }).pipe(
            Stream.runForEach((chunk) =>
              Effect.gen(function*() {
                if (chunk._tag === "Usage") {
                  usage = { tokensIn: chunk.tokensIn, tokensOut: chunk.tokensOut }
                  return
                }
                answer += chunk.text
                ttftMs ??= (yield* Clock.currentTimeMillis) - startedAt
                yield* reply.preview(answer)
              })
            ),
            Effect.timeoutOrElse({
              duration: config.turnTimeout,
              orElse: () => Effect.fail(new LlmError({ status: 0, message: "the turn took too long" }))
            }),
            Effect.as(Option.none<LlmError>()),
            // Only the LLM's failures are answered here; Telegram's go up to the turn's handlers.
            Effect.catchTag("LlmError", (error) => Effect.succeed(Option.some(error)))
          )
          const now = yield* Clock.currentTimeMillis
          if (Option.isNone(aiFailure)) {
            return yield* deliver(mail, reply, answer.trim().length > 0 ? answer : "…", record(now))
          }
          // Keep what was already shown, marked as cut off; otherwise say briefly that it failed.
          yield* reply.finish(answer.trim().length > 0 ? answer + texts.cutOff : texts.failed)
          yield* mailbox.fail(mail, aiFailure.value.message, Option.some(record(now)))
          yield* Effect.logWarning("chat turn failed", aiFailure.value.message)
          return "failed" as const
        }).pipe(Effect.scoped)

      const turn = (mail: Mail) =>
        Effect.gen(function*() {
          const startedAt = yield* Clock.currentTimeMillis
          // Nothing can be delivered before the chat's flood wait ends: do not ask the LLM yet.
          const floodWait = yield* telegram.floodWaitSeconds(mail.chatId)
          if (floodWait > maxWaitSeconds) {
            return yield* postpone(mail, floodWaitError("sendMessage", floodWait))
          }
          const reply = yield* writer.open(
            mail.chatId,
            mail.chatType === "private" ? draftIdOf(mail) : undefined,
            mail.replyMessageIds,
            (ids) => mailbox.recordReplyIds(mail, ids)
          )
          if (mail.attempts > maxAttempts) {
            yield* reply.finish(texts.failed)
            yield* mailbox.fail(mail, `gave up after ${maxAttempts} attempts`, Option.none())
            return { kind: "message", outcome: "failed" }
          }
          if (mail.pendingAnswer !== null) {
            return { kind: "message", outcome: yield* fixedReply(mail, reply, mail.pendingAnswer, mail.conversationId) }
          }
          const command = parseCommand(mail.text)
          if (command === "new") {
            yield* conversations.startNew(mail.chatId, mail.userId)
            return { kind: "command", outcome: yield* fixedReply(mail, reply, texts.newConversation) }
          }
          if (command !== undefined) return { kind: "command", outcome: yield* fixedReply(mail, reply, texts[command]) }
          if (mail.overLimit) return { kind: "over_limit", outcome: yield* fixedReply(mail, reply, texts.overLimit) }
          return { kind: "message", outcome: yield* answerWithLlm(mail, reply, startedAt) }
        }).pipe(
          Effect.catchTags({
            UnreachableChat: (error) =>
              mailbox.markUnreachable(mail.chatId, error.message).pipe(
                Effect.andThen(Effect.logInfo("chat unreachable, its mail is skipped", error.message)),
                Effect.as({ kind: "message", outcome: "unreachable" })
              ),
            // Telegram away (timeouts, 5xx, a long flood wait): hand the message back and fail the
            // wake-up, so the queue's backoff or the sweeper redoes it (at most maxAttempts turns).
            // Telegram refusing the request itself (other 4xx): the message fails for good.
            TelegramApiError: (error) =>
              isTransient(error)
                ? postpone(mail, error)
                : refused(mail, error, Option.none()).pipe(Effect.map((outcome) => ({ kind: "message", outcome }))),
            RejectedFormatting: (error) =>
              refused(mail, error, Option.none()).pipe(Effect.map((outcome) => ({ kind: "message", outcome })))
          })
        )

      return ChatTurn.of({
        run: Effect.fn("ChatTurn.run")(function*(mail: Mail) {
          const startedAt = yield* Clock.currentTimeMillis
          const { kind, outcome } = yield* turn(mail).pipe(
            // Shutdown: hand the message back so the next holder of the chat redoes it.
            Effect.onInterrupt(() => mailbox.release(mail, { countAttempt: false }).pipe(Effect.ignore))
          )
          const millis = (yield* Clock.currentTimeMillis) - startedAt
          yield* Metric.update(Metric.withAttributes(turns, { kind, outcome }), 1)
          yield* Metric.update(Metric.withAttributes(turnDuration, { outcome }), millis / 1000)
          yield* Effect.logInfo("turn done").pipe(Effect.annotateLogs({ kind, outcome, duration_ms: millis, attempt: mail.attempts }))
        }, (effect, mail) =>
          Effect.annotateLogs(effect, { update_id: mail.updateId, chat_id: mail.chatId, message_id: mail.id }))
      })
    })
  )
}
