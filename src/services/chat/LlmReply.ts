import { Clock, Context, Effect, Layer, Option, Semaphore, Stream } from "effect"
import type { ChatMessage } from "../../schema/llm/ChatMessage.ts"
import { isGroupType } from "../../schema/telegram/TelegramUpdate.ts"
import { Ai, LlmError } from "../llm/Ai.ts"
import { buildPrompt, groupSystemPrompt, labelled, systemPrompt } from "../llm/Prompt.ts"
import { Spend } from "../llm/Spend.ts"
import { Tokenizer } from "../llm/Tokenizer.ts"
import { AppConfig } from "../platform/AppConfig.ts"
import { storable } from "../platform/Storable.ts"
import type { StorageOutage } from "../platform/StorageOutage.ts"
import type { TelegramError } from "../telegram/Telegram.ts"
import { Conversations } from "./Conversations.ts"
import { Stops } from "./Stops.ts"
import type { Mail, MailboxError, TurnRecord } from "./Mailbox.ts"
import type { LiveReply } from "./ReplyWriter.ts"

/** Earlier exchanges read for a private chat's prompt, before trimming to the token budget (groups: GROUP_HISTORY_MESSAGES). */
const historyLimit = 200

/** The LLM's answer so far (`record.answer`), and why it ended early, if it did. */
export interface LlmOutcome {
  readonly record: TurnRecord
  readonly failure: Option.Option<LlmError>
  /** The user stopped it (`record.stopped` too): what streamed before is the answer. */
  readonly stopped: boolean
  /** The message was longer than the prompt's room: only this many UTF-16 units were sent. */
  readonly keptChars: Option.Option<number>
}

/** What the LLM is asked for a message: its conversation's exchanges and the message, fitted to the budget. */
export interface Prompted {
  /** The open conversation of the message's topic (uuid). */
  readonly conversationId: string
  readonly prompt: ReadonlyArray<ChatMessage>
  /** The message was longer than the prompt's room: only this many UTF-16 units are sent. */
  readonly keptChars: Option.Option<number>
}

/** Asks the LLM to answer a message in its conversation, streaming the answer into the reply. */
export class LlmReply extends Context.Service<LlmReply, {
  /**
   * The prompt for the message: the conversation's earlier exchanges and the message (cut to fit
   * when it alone passes CONTEXT_TOKEN_BUDGET minus MAX_ANSWER_TOKENS; the rest is trimmed to
   * it). Opens the topic's conversation if none is open.
   */
  readonly prepare: (mail: Mail) => Effect.Effect<Prompted, StorageOutage>
  /**
   * Sends the prompt, previews the answer in `reply` as it streams, and stops it after
   * TURN_TIMEOUT_SECONDS or when the user asks (Stops; the request is aborted). An LLM failure
   * (or the time limit) is returned, not failed with: what streamed before it is in the record.
   * `startedAt` (epoch ms) is the turn's start. At most LLM_CONCURRENCY answers stream at once
   * per process; the reply shows its progress (typing, then previews) only while its answer
   * streams, never while it waits.
   */
  readonly answer: (
    mail: Mail,
    prompted: Prompted,
    reply: LiveReply,
    startedAt: number
  ) => Effect.Effect<LlmOutcome, StorageOutage | MailboxError | TelegramError>
}>()("bot/LlmReply") {
  static readonly layer = Layer.effect(
    LlmReply,
    Effect.gen(function*() {
      const config = yield* AppConfig
      const ai = yield* Ai
      // LLM calls are I/O: many stream at once, bounded by memory and the provider's limits.
      const streaming = yield* Semaphore.make(config.llmConcurrency)
      const conversations = yield* Conversations
      const stops = yield* Stops
      const tokenizer = yield* Tokenizer
      const spend = yield* Spend
      const promptBudget = config.contextTokenBudget - config.maxAnswerTokens
      // An answer longer than this (UTF-16 units) is cut: a server that ignores the token limit
      // cannot grow the buffer (and the message) without bound. Tokens rarely exceed 8 units.
      const answerCap = config.maxAnswerTokens * 8

      return LlmReply.of({
        prepare: Effect.fn("LlmReply.prepare")(function*(mail: Mail) {
          // In groups, each message is labelled with its sender, and history reaches back less far.
          const inGroup = isGroupType(mail.chatType)
          const { conversationId, history } = yield* conversations.recall(mail, mail.id, inGroup ? config.groupHistoryMessages : historyLimit)
          const group = inGroup ? { sender: yield* conversations.sender(mail.userId) } : undefined
          const tokens = yield* tokenizer.counter
          // The message's room: the budget less the system prompt and, in groups, its label.
          const fixed = group ? tokens.count(groupSystemPrompt) + tokens.count(labelled(group.sender, "")) : tokens.count(systemPrompt)
          const message = tokens.fit(mail.text, promptBudget - fixed)
          const prompt = buildPrompt(history, message.text, promptBudget, tokens.count, group)
          return { conversationId, prompt, keptChars: Option.fromUndefinedOr(message.keptChars) }
        }),
        answer: Effect.fn("LlmReply.answer")(function*(mail: Mail, { conversationId, keptChars, prompt }: Prompted, reply: LiveReply, startedAt: number) {
          const tokens = yield* tokenizer.counter
          let answer = ""
          let ttftMs: number | null = null
          let usage: { tokensIn: number; tokensOut: number } | undefined
          const streamed = ai.streamChat(prompt, { maxTokens: config.maxAnswerTokens }).pipe(
            Stream.takeUntil(() => answer.length >= answerCap),
            Stream.runForEach(Effect.fnUntraced(function*(chunk) {
              if (chunk._tag === "Usage") {
                usage = { tokensIn: chunk.tokensIn, tokensOut: chunk.tokensOut }
                return
              }
              answer = (answer + chunk.text).slice(0, answerCap)
              ttftMs ??= (yield* Clock.currentTimeMillis) - startedAt
              yield* reply.preview(answer)
            })),
            Effect.timeoutOrElse({
              duration: config.turnTimeout,
              orElse: () => Effect.fail(new LlmError({ status: 0, message: "the turn took too long" }))
            }),
            Effect.as(Option.none<LlmError>()),
            // Only the LLM's failures end here; Telegram's and the database's go up to the turn.
            Effect.catchTag("LlmError", (error) => Effect.succeed(Option.some(error)))
          )
          // The first to end wins: a stop interrupts the stream, which aborts the request. The
          // progress shown ends with it: a finished answer waiting for its turn shows no typing.
          const ended = yield* reply.showProgress.pipe(
            Effect.andThen(Effect.raceFirst(
              Effect.map(streamed, (failure) => ({ failure, stopped: false })),
              Effect.as(stops.awaitStop(mail.id), { failure: Option.none<LlmError>(), stopped: true })
            )),
            Effect.scoped,
            streaming.withPermit
          )
          // Without the server's usage (stopped, cut, timed out, failed mid-stream, or a server
          // that never reports it) the bot's own count stands in: the spend caps must see every turn.
          const used = usage ?? {
            tokensIn: prompt.reduce((sum, m) => sum + tokens.count(m.content), 0),
            tokensOut: answer.length > 0 ? tokens.count(answer) : 0
          }
          const record: TurnRecord = {
            // What Postgres (and Telegram) can hold: a NUL from the LLM must not fail the turn.
            answer: storable(answer),
            conversationId,
            model: ai.model,
            ...used,
            costMicroCents: spend.costOf(used.tokensIn, used.tokensOut),
            latencyMs: (yield* Clock.currentTimeMillis) - startedAt,
            ttftMs,
            ...(ended.stopped ? { stopped: true } : {})
          }
          return { record, ...ended, keptChars }
        })
      })
    })
  )
}
