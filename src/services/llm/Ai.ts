import { Context, type Effect, Schema, type Stream } from "effect"
import type { ChatMessage } from "../../schema/llm/ChatMessage.ts"

/**
 * The LLM call failed after its retries. `status` is the HTTP status, 0 for a network failure or
 * a timeout; `message` has the API key and anything shaped like a key cut out.
 */
export class LlmError extends Schema.TaggedError<LlmError>()("LlmError", {
  status: Schema.Number,
  retryAfterSeconds: Schema.optional(Schema.Number),
  message: Schema.String
}) {}

/** A piece of the streamed answer, or the token usage the server reports at the end. */
export type AiChunk =
  | { readonly _tag: "Delta"; readonly text: string }
  | { readonly _tag: "Usage"; readonly tokensIn: number; readonly tokensOut: number }

/**
 * Streaming chat completions. Implementations: `layers/llm/AiOpenAi.ts` (the openai SDK on
 * OPENAI_BASE_URL, with timeouts and a declared retry schedule) and `AiMemory.ts` (scripted
 * answers and failures, for service tests).
 */
export class Ai extends Context.Service<Ai, {
  /** The model every request names (OPENAI_MODEL), recorded with each turn's usage. */
  readonly model: string
  /**
   * Streams the answer to `messages`, at most `maxTokens` tokens long. Fails with LlmError; closing
   * the stream's scope (interruption) aborts the HTTP request.
   */
  readonly streamChat: (
    messages: ReadonlyArray<ChatMessage>,
    options: { readonly maxTokens: number }
  ) => Stream.Stream<AiChunk, LlmError>
  /**
   * One cheap authenticated call (GET /models, no tokens spent), tried once: fails with LlmError
   * (401/403: the key is refused; 0: the server cannot be reached).
   */
  readonly checkKey: Effect.Effect<void, LlmError>
}>()("bot/Ai") {}
