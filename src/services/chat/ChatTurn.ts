import { Clock, Context, Effect, Layer, Metric, Option } from "effect"
import { BillingReplies } from "../billing/BillingReplies.ts"
import { billingTexts } from "../billing/BillingTexts.ts"
import { AppConfig } from "../platform/AppConfig.ts"
import { turnDuration, turns } from "../platform/Metrics.ts"
import type { RedisOutage } from "../platform/Redis.ts"
import type { StorageOutage } from "../platform/StorageOutage.ts"
import { GroupAdmins } from "../telegram/GroupAdmins.ts"
import { SendBudget } from "../telegram/SendBudget.ts"
import { isGroupType, stopButtonData } from "../../schema/telegram/TelegramUpdate.ts"
import type { QueueOutage } from "../platform/JobQueue.ts"
import { floodWaitError, maxWaitSeconds, type UrlButton } from "../telegram/Telegram.ts"
import { Admission } from "./Admission.ts"
import { Bursts } from "./Bursts.ts"
import { type Command, isBlank, parseCommand, texts } from "./ChatTexts.ts"
import { Conversations } from "./Conversations.ts"
import { Delivery, type DeliveryPostponed, type TurnOutcome, withoutLlm } from "./Delivery.ts"
import { LlmReply, type LlmOutcome, type Prompted } from "./LlmReply.ts"
import { type Mail, Mailbox, type MailboxError } from "./Mailbox.ts"
import { type LiveReply, ReplyWriter, type ReplyTarget } from "./ReplyWriter.ts"
import { draftIdOf } from "./Stops.ts"
import { TurnStarts } from "./TurnStarts.ts"

/** A message that keeps failing (or crashing the worker) is given up after this many turns. */
export const maxAttempts = 5
/**
 * Past a rate limit, its notice is said once per this many seconds (the limits' window); past a
 * daily quota, once per quota day. Silence otherwise, so a flood never becomes a flood of
 * notices (issue 9).
 */
const rateNoticeEverySeconds = 60
/** "I can only read text" is said at most once per chat per this many seconds (issue 7: 10 minutes). */
const textOnlyEverySeconds = 600


/** Billing links are personal: in groups the bot sends people to a private chat. */
const whereOf = (mail: Mail) => (mail.chatType === "private" ? "private" as const : "group" as const)

/**
 * Where the reply goes: the message's topic; in private chats a draft the user can stop; in
 * groups a reply to the question (the burst's last) with a Stop button while it streams.
 */
const targetOf = (mail: Mail): ReplyTarget => ({
  chatId: mail.chatId,
  ...(mail.threadId !== null ? { threadId: mail.threadId } : {}),
  ...(mail.chatType === "private"
    ? { draftId: draftIdOf(mail.id) }
    : mail.replyTo !== null
    ? { replyTo: mail.replyTo, stopData: stopButtonData(mail.id) }
    : {})
})

/** The LLM's answer as shown: marked when stopped, with what the user should know about their message. */
const shownAnswer = (mail: Mail, { keptChars, record, stopped }: LlmOutcome) => {
  const answer = record.answer.trim().length > 0 ? record.answer : stopped ? "" : texts.empty
  const notes = [
    stopped ? texts.stopped : "",
    Option.match(keptChars, { onNone: () => "", onSome: texts.truncated }),
    mail.attachment !== null ? texts.attachmentNotRead(mail.attachment) : ""
  ].join("")
  return (answer + notes).trim()
}

/** What a turn does with its mail, the first that applies. */
type Plan =
  | { readonly _tag: "GiveUp" }
  | { readonly _tag: "Notice" }
  | { readonly _tag: "DeliverKept"; readonly answer: string }
  | { readonly _tag: "Command"; readonly command: Command }
  | { readonly _tag: "OverLimit" }
  /** An attachment without a caption (voice, sticker...): never sent to the LLM. */
  | { readonly _tag: "TextOnly" }
  /** Nothing readable once cleaned: never sent to the LLM. */
  | { readonly _tag: "Blank" }
  | { readonly _tag: "AskLlm" }

const planOf = (mail: Mail): Plan => {
  if (mail.attempts > maxAttempts) return { _tag: "GiveUp" }
  if (mail.kind === "notice") return { _tag: "Notice" }
  if (mail.pendingAnswer !== null) return { _tag: "DeliverKept", answer: mail.pendingAnswer }
  // Past the updates limit even commands are not answered: a flood of /account is a flood.
  if (mail.overLimit) return { _tag: "OverLimit" }
  if (mail.attachment !== null && mail.text.length === 0) return { _tag: "TextOnly" }
  if (isBlank(mail.text)) return { _tag: "Blank" }
  const command = parseCommand(mail.text)
  return command !== undefined ? { _tag: "Command", command } : { _tag: "AskLlm" }
}

/** The `kind` label of chat_turns_total. */
const kindOf = (plan: Plan) => {
  switch (plan._tag) {
    case "Command":
      return "command"
    case "OverLimit":
      return "over_limit"
    case "Notice":
      return "notice"
    case "TextOnly":
      return "text_only"
    case "Blank":
      return "blank"
    default:
      return "message"
  }
}

/** One turn of a chat: the reply to one entry of its mailbox. */
export class ChatTurn extends Context.Service<ChatTurn, {
  /**
   * Answers the mail: a notice, a command or a limit's notice without the LLM, else (within the
   * sender's quota and rate limit) the LLM's streamed answer; an answer an earlier attempt got
   * but could not deliver is delivered without asking again. Fails, leaving the mail to be
   * redone, when the database or Redis is away, when Telegram stays away past its retries
   * (DeliveryPostponed), or when another turn took the mail over (MailTakenOver). Interrupted,
   * it hands the mail back uncounted.
   */
  readonly run: (mail: Mail) => Effect.Effect<void, MailboxError | DeliveryPostponed | StorageOutage | RedisOutage | QueueOutage>
}>()("bot/ChatTurn") {
  static readonly layer = Layer.effect(
    ChatTurn,
    Effect.gen(function*() {
      const { billingTimezone } = yield* AppConfig
      const budget = yield* SendBudget
      const mailbox = yield* Mailbox
      const conversations = yield* Conversations
      const groupAdmins = yield* GroupAdmins
      const writer = yield* ReplyWriter
      const delivery = yield* Delivery
      const llm = yield* LlmReply
      const admission = yield* Admission
      const billing = yield* BillingReplies
      const bursts = yield* Bursts
      const starts = yield* TurnStarts

      const openReply = (mail: Mail) =>
        writer.open(targetOf(mail), mail.replyMessageIds, (ids) => mailbox.recordReplyIds(mail, ids))

      const fixedReply = (
        mail: Mail,
        reply: LiveReply,
        text: string,
        { buttons = [], conversationId = null }: { buttons?: ReadonlyArray<UrlButton>; conversationId?: string | null } = {}
      ) => delivery.deliver(mail, reply, text, withoutLlm(text, conversationId), buttons)

      const answerWithLlm = (mail: Mail, reply: LiveReply, prompted: Prompted, startedAt: number) =>
        Effect.gen(function*() {
          const outcome = yield* llm.answer(mail, prompted, reply, startedAt)
          const { failure, record } = outcome
          if (Option.isNone(failure)) {
            // Stored as shown, notes included: a later turn delivering it (Telegram away) shows the same.
            const shown = shownAnswer(mail, outcome)
            return yield* delivery.deliver(mail, reply, shown, { ...record, answer: shown })
          }
          const error = failure.value
          // The LLM server refuses the operator's key: nothing the user can do; the operator must know.
          const keyRefused = error.status === 401 || error.status === 403
          const shown = record.answer.trim().length > 0
          yield* reply.finish(keyRefused ? texts.unavailable : shown ? record.answer + texts.cutOff : texts.failed)
          yield* mailbox.fail(mail, error.message, Option.some(record))
          if (keyRefused) yield* Effect.logError("the LLM server refuses the API key (OPENAI_API_KEY)", error.message)
          else yield* Effect.logWarning("chat turn failed", error.message)
          return "failed" as const
        })

      const command = (mail: Mail, reply: LiveReply, name: Command) =>
        Effect.gen(function*() {
          switch (name) {
            case "new":
              // A group's conversation is everyone's: only its admins (or the bot's operators) reset it.
              if (isGroupType(mail.chatType) && (mail.userId === null || !(yield* groupAdmins.mayManage(mail.chatId, mail.userId)))) {
                return yield* fixedReply(mail, reply, texts.newAdminsOnly)
              }
              yield* conversations.startNew(mail.chatId, mail.threadId, mail.userId)
              return yield* fixedReply(mail, reply, texts.newConversation)
            case "subscribe":
            case "account": {
              if (mail.userId === null) return yield* fixedReply(mail, reply, texts.help)
              const where = whereOf(mail)
              const { buttons, text } = yield* (name === "subscribe" ? billing.subscribe(mail.userId, where) : billing.account(mail.userId, where))
              return yield* fixedReply(mail, reply, text, { buttons })
            }
            default:
              return yield* fixedReply(mail, reply, texts[name])
          }
        })

      /** No reply at all: the sender was told already (the decision stays stored with the message). */
      const silent = (mail: Mail, reason: string) => mailbox.skip(mail, reason).pipe(Effect.as("skipped" as const))

      /** Past the updates limit: "slow down" once a minute per user, silence otherwise. */
      const overLimit = (mail: Mail, reply: LiveReply) =>
        Effect.gen(function*() {
          const told = mail.gate === "silenced" ||
            (mail.gate === null && (yield* mailbox.toldAlready(mail, ["slow_down"], { seconds: rateNoticeEverySeconds })))
          if (told) {
            if (mail.gate === null) yield* mailbox.decide(mail, "silenced")
            return yield* silent(mail, "past the updates-per-minute limit, told to slow down already")
          }
          if (mail.gate === null) yield* mailbox.decide(mail, "slow_down")
          return yield* fixedReply(mail, reply, texts.slowDown)
        })

      /** Once per chat per 10 minutes, and once per album that has a caption elsewhere. */
      const textOnly = (mail: Mail, reply: LiveReply) =>
        Effect.gen(function*() {
          if (mail.gate === null && (yield* mailbox.toldTextOnly(mail, textOnlyEverySeconds))) {
            yield* mailbox.skip(mail, "not text, told 'text only' in the last 10 minutes already")
            return "skipped" as const
          }
          if (mail.gate === null) yield* mailbox.decide(mail, "text_only")
          return yield* fixedReply(mail, reply, texts.textOnly)
        })

      const askLlm = (mail: Mail, reply: LiveReply, startedAt: number) =>
        Effect.gen(function*() {
          const admitted = yield* Effect.gen(function*() {
            const admitted = yield* admission.admit(mail)
            if (admitted._tag !== "Llm") return admitted
            const burst = yield* bursts.gather(mail)
            return { _tag: "Llm" as const, burst, prompted: yield* llm.prepare(burst) }
          }).pipe(Effect.ensuring(starts.ready))
          switch (admitted._tag) {
            case "Llm": {
              const { burst, prompted } = admitted
              // Merged, the answer replies to the burst's last message.
              const burstReply = burst === mail ? reply : yield* openReply(burst)
              return yield* answerWithLlm(burst, burstReply, prompted, startedAt)
            }
            case "Paywall": {
              if (yield* mailbox.toldAlready(mail, ["paywall"], { day: admitted.day, timeZone: billingTimezone })) {
                return yield* silent(mail, "past the free quota, shown the paywall today already")
              }
              const { buttons, text } = yield* billing.paywall(mail.userId!, admitted.limit, whereOf(mail))
              return yield* fixedReply(mail, reply, text, { buttons })
            }
            case "FairUse":
              if (yield* mailbox.toldAlready(mail, ["fair_use"], { day: admitted.day, timeZone: billingTimezone })) {
                return yield* silent(mail, "past the fair-use cap, told today already")
              }
              return yield* fixedReply(mail, reply, billingTexts.fairUse(admitted.limit, billingTimezone))
            case "RateLimited":
              if (yield* mailbox.toldAlready(mail, ["rate_limited"], { seconds: rateNoticeEverySeconds })) {
                return yield* silent(mail, "past the LLM rate limit, told in the last minute already")
              }
              return yield* fixedReply(mail, reply, texts.rateLimited(admitted.perMinute, admitted.retryAfterSeconds))
            case "SpendCapped": {
              const gate = admitted.cap === "user" ? "token_cap" as const : "spend_cap" as const
              if (yield* mailbox.toldAlready(mail, [gate], { day: admitted.day, timeZone: billingTimezone })) {
                return yield* silent(mail, `past the ${admitted.cap === "user" ? "user's daily tokens" : "daily spend"} cap, told today already`)
              }
              return yield* fixedReply(mail, reply, admitted.cap === "user" ? texts.tokenCap(billingTimezone) : texts.spendCap)
            }
          }
        })

      const turn = (mail: Mail, plan: Plan, startedAt: number) =>
        Effect.gen(function*() {
          // Nothing can be delivered before the chat's (or the bot's) flood wait ends: do not ask the LLM yet.
          const floodWait = yield* budget.floodWaitSeconds(mail.chatId)
          if (floodWait > maxWaitSeconds) return yield* delivery.postpone(mail, floodWaitError("sendMessage", floodWait))
          const reply = yield* openReply(mail)
          // Only a question to the LLM has more to get ready (TurnStarts): the rest replies now.
          if (plan._tag !== "AskLlm") yield* starts.ready
          switch (plan._tag) {
            case "GiveUp":
              yield* reply.finish(texts.failed)
              yield* mailbox.fail(mail, `gave up after ${maxAttempts} attempts`, Option.none())
              return "failed" as const
            case "Notice":
              return yield* fixedReply(mail, reply, mail.text, { buttons: mail.buttons })
            case "DeliverKept":
              return yield* fixedReply(mail, reply, plan.answer, { conversationId: mail.conversationId })
            case "Command":
              return yield* command(mail, reply, plan.command)
            case "OverLimit":
              return yield* overLimit(mail, reply)
            case "TextOnly":
              return yield* textOnly(mail, reply)
            case "Blank":
              return yield* fixedReply(mail, reply, texts.emptyText)
            case "AskLlm":
              return yield* askLlm(mail, reply, startedAt)
          }
        }).pipe(
          Effect.catchTag(
            ["UnreachableChat", "TelegramApiError", "RejectedFormatting", "MessageGone", "ChatMigrated"],
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
