import { Clock, Context, Effect, Layer, Metric, Option } from "effect"
import { turnDuration, turns } from "../platform/Metrics.ts"
import { SendPacer } from "../telegram/SendPacer.ts"
import { floodWaitError, maxWaitSeconds } from "../telegram/Telegram.ts"
import { type Command, parseCommand, texts } from "./ChatTexts.ts"
import { Conversations } from "./Conversations.ts"
import { Delivery, type DeliveryPostponed, type TurnOutcome, withoutLlm } from "./Delivery.ts"
import { LlmReply } from "./LlmReply.ts"
import { type Mail, Mailbox, type MailboxError } from "./Mailbox.ts"
import { type LiveReply, ReplyWriter } from "./ReplyWriter.ts"

/** A message that keeps failing (or crashing the worker) is given up after this many turns. */
export const maxAttempts = 5

/** Drafts are private-chat only; one non-zero id per message, the same on a redo. */
const draftIdOf = (mail: Mail): number => (mail.id % 2_147_483_646) + 1

/** What a turn does with its message, the first that applies. */
type Plan =
  | { readonly _tag: "GiveUp" }
  | { readonly _tag: "DeliverKept"; readonly answer: string }
  | { readonly _tag: "Command"; readonly command: Command }
  | { readonly _tag: "OverLimit" }
  | { readonly _tag: "AskLlm" }

const planOf = (mail: Mail): Plan => {
  if (mail.attempts > maxAttempts) return { _tag: "GiveUp" }
  if (mail.pendingAnswer !== null) return { _tag: "DeliverKept", answer: mail.pendingAnswer }
  const command = parseCommand(mail.text)
  if (command !== undefined) return { _tag: "Command", command }
  return mail.overLimit ? { _tag: "OverLimit" } : { _tag: "AskLlm" }
}

/** The `kind` label of chat_turns_total. */
const kindOf = (plan: Plan) => (plan._tag === "Command" ? "command" : plan._tag === "OverLimit" ? "over_limit" : "message")

/** One turn of a chat: the reply to one message of its mailbox. */
export class ChatTurn extends Context.Service<ChatTurn, {
  /**
   * Answers the message: a command or a notice without the LLM, else the LLM's streamed answer;
   * an answer an earlier attempt got but could not deliver is delivered without asking again.
   * Fails, leaving the message to be redone, when the database is away (StorageOutage), when
   * Telegram stays away past its retries (DeliveryPostponed), or when another turn took the
   * message over (MailTakenOver). Interrupted, it hands the message back uncounted.
   */
  readonly run: (mail: Mail) => Effect.Effect<void, MailboxError | DeliveryPostponed>
}>()("bot/ChatTurn") {
  static readonly layer = Layer.effect(
    ChatTurn,
    Effect.gen(function*() {
      const pacer = yield* SendPacer
      const mailbox = yield* Mailbox
      const conversations = yield* Conversations
      const writer = yield* ReplyWriter
      const delivery = yield* Delivery
      const llm = yield* LlmReply

      const fixedReply = (mail: Mail, reply: LiveReply, text: string, conversationId: string | null = null) =>
        delivery.deliver(mail, reply, text, withoutLlm(text, conversationId))

      const answerWithLlm = (mail: Mail, reply: LiveReply, startedAt: number) =>
        Effect.gen(function*() {
          const { failure, record } = yield* llm.answer(mail, reply, startedAt)
          const shown = record.answer.trim().length > 0
          if (Option.isNone(failure)) return yield* delivery.deliver(mail, reply, shown ? record.answer : texts.empty, record)
          // Keep what was already shown, marked as cut off; otherwise say briefly that it failed.
          yield* reply.finish(shown ? record.answer + texts.cutOff : texts.failed)
          yield* mailbox.fail(mail, failure.value.message, Option.some(record))
          yield* Effect.logWarning("chat turn failed", failure.value.message)
          return "failed" as const
        }).pipe(Effect.scoped) // the typing indicator lasts until the answer is delivered

      const turn = (mail: Mail, plan: Plan, startedAt: number) =>
        Effect.gen(function*() {
          // Nothing can be delivered before the chat's flood wait ends: do not ask the LLM yet.
          const floodWait = yield* pacer.floodWaitSeconds(mail.chatId)
          if (floodWait > maxWaitSeconds) return yield* delivery.postpone(mail, floodWaitError("sendMessage", floodWait))
          const reply = yield* writer.open(
            mail.chatId,
            mail.chatType === "private" ? draftIdOf(mail) : undefined,
            mail.replyMessageIds,
            (ids) => mailbox.recordReplyIds(mail, ids)
          )
          switch (plan._tag) {
            case "GiveUp":
              yield* reply.finish(texts.failed)
              yield* mailbox.fail(mail, `gave up after ${maxAttempts} attempts`, Option.none())
              return "failed" as const
            case "DeliverKept":
              return yield* fixedReply(mail, reply, plan.answer, mail.conversationId)
            case "Command":
              if (plan.command !== "new") return yield* fixedReply(mail, reply, texts[plan.command])
              yield* conversations.startNew(mail.chatId, mail.userId)
              return yield* fixedReply(mail, reply, texts.newConversation)
            case "OverLimit":
              return yield* fixedReply(mail, reply, texts.overLimit)
            case "AskLlm":
              return yield* answerWithLlm(mail, reply, startedAt)
          }
        }).pipe(
          Effect.catchTag(
            ["UnreachableChat", "TelegramApiError", "RejectedFormatting", "MessageGone"],
            (error) => delivery.onTelegramFailure(mail, error)
          )
        )

      return ChatTurn.of({
        run: Effect.fn("ChatTurn.run")(function*(mail: Mail) {
          const startedAt = yield* Clock.currentTimeMillis
          const plan = planOf(mail)
          const kind = kindOf(plan)
          const done = (outcome: TurnOutcome | "postponed") =>
            Effect.gen(function*() {
              const millis = (yield* Clock.currentTimeMillis) - startedAt
              yield* Metric.update(Metric.withAttributes(turns, { kind, outcome }), 1)
              yield* Metric.update(Metric.withAttributes(turnDuration, { outcome }), millis / 1000)
              yield* Effect.logInfo("turn done").pipe(
                Effect.annotateLogs({ kind, outcome, duration_ms: millis, attempt: mail.attempts })
              )
            })
          const outcome = yield* turn(mail, plan, startedAt).pipe(
            // Shutdown: hand the message back so the next holder of the chat redoes it.
            Effect.onInterrupt(() => mailbox.release(mail, { countAttempt: false }).pipe(Effect.ignore)),
            Effect.tapErrorTag("DeliveryPostponed", () => done("postponed"))
          )
          yield* done(outcome)
        }, (effect, mail) =>
          Effect.annotateLogs(effect, { update_id: mail.updateId, chat_id: mail.chatId, message_id: mail.id }))
      })
    })
  )
}
