import { Clock, Context, Effect, Layer, Option, Schedule, type Scope, Stream } from "effect"
import { Ai, LlmError } from "../llm/Ai.ts"
import { buildPrompt } from "../llm/Prompt.ts"
import { AppConfig } from "../platform/AppConfig.ts"
import { storable } from "../platform/Storable.ts"
import type { StorageOutage } from "../platform/StorageOutage.ts"
import { Telegram, type TelegramError } from "../telegram/Telegram.ts"
import { Conversations } from "./Conversations.ts"
import type { Mail, MailboxError, TurnRecord } from "./Mailbox.ts"
import type { LiveReply } from "./ReplyWriter.ts"

/** Earlier exchanges read for the prompt, before trimming to the token budget. */
const historyLimit = 200
/** Telegram shows "typing…" for about 5 s: renewed every 4 s while the LLM answers. */
const typingEvery = Schedule.spaced("4 seconds")

/** The LLM's answer so far (`record.answer`), and why it stopped early, if it did. */
export interface LlmOutcome {
  readonly record: TurnRecord
  readonly failure: Option.Option<LlmError>
}

/** Asks the LLM to answer a message in its conversation, streaming the answer into the reply. */
export class LlmReply extends Context.Service<LlmReply, {
  /**
   * Sends the conversation's earlier exchanges (trimmed to CONTEXT_TOKEN_BUDGET minus
   * MAX_ANSWER_TOKENS) and the message, previews the answer in `reply` as it streams, and stops
   * it after TURN_TIMEOUT_SECONDS. An LLM failure (or the time limit) is returned, not failed
   * with: what streamed before it is in the record. `startedAt` (epoch ms) is the turn's start.
   * Shows "typing…" from the request on, until the caller's scope closes (after delivery).
   */
  readonly answer: (
    mail: Mail,
    reply: LiveReply,
    startedAt: number
  ) => Effect.Effect<LlmOutcome, StorageOutage | MailboxError | TelegramError, Scope.Scope>
}>()("bot/LlmReply") {
  static readonly layer = Layer.effect(
    LlmReply,
    Effect.gen(function*() {
      const config = yield* AppConfig
      const ai = yield* Ai
      const telegram = yield* Telegram
      const conversations = yield* Conversations
      const promptBudget = config.contextTokenBudget - config.maxAnswerTokens

      return LlmReply.of({
        answer: Effect.fn("LlmReply.answer")(function*(mail: Mail, reply: LiveReply, startedAt: number) {
          const conversationId = yield* conversations.current(mail.chatId, mail.userId)
          const history = yield* conversations.history(conversationId, mail.id, historyLimit)
          const prompt = buildPrompt(history, mail.text, promptBudget)
          yield* Effect.forkScoped(telegram.sendTyping(mail.chatId).pipe(Effect.ignore, Effect.repeat(typingEvery)))

          let answer = ""
          let ttftMs: number | null = null
          let usage = { tokensIn: 0, tokensOut: 0 }
          const failure = yield* ai.streamChat(prompt, { maxTokens: config.maxAnswerTokens }).pipe(
            Stream.runForEach(Effect.fnUntraced(function*(chunk) {
              if (chunk._tag === "Usage") {
                usage = { tokensIn: chunk.tokensIn, tokensOut: chunk.tokensOut }
                return
              }
              answer += chunk.text
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
          const record: TurnRecord = {
            // What Postgres (and Telegram) can hold: a NUL from the LLM must not fail the turn.
            answer: storable(answer),
            conversationId,
            model: ai.model,
            ...usage,
            latencyMs: (yield* Clock.currentTimeMillis) - startedAt,
            ttftMs
          }
          return { record, failure }
        })
      })
    })
  )
}
