import OpenAI from "openai"
import { Context, Duration, Effect, Layer, Metric, Option, Redacted, Schedule, Schema, Stream } from "effect"
import { AppConfig } from "./AppConfig.ts"
import { llmErrors, llmTimeToFirstToken, llmTokens } from "./Metrics.ts"

export class LlmError extends Schema.TaggedError<LlmError>()("LlmError", {
  status: Schema.Number, // 0: network failure or timeout
  retryAfterSeconds: Schema.optional(Schema.Number),
  message: Schema.String
}) {}

export interface ChatMessage {
  readonly role: "system" | "user" | "assistant"
  readonly content: string
}

export type AiChunk =
  | { readonly _tag: "Delta"; readonly text: string }
  | { readonly _tag: "Usage"; readonly tokensIn: number; readonly tokensOut: number }

/** Waiting for the first byte of an answer; a stream that stalls longer between chunks fails too. */
const firstByteTimeout = Duration.seconds(60)
const idleChunkTimeout = Duration.seconds(60)

/**
 * 429, 5xx, timeouts and network errors: exponential backoff with jitter, at least the server's
 * Retry-After, four retries at most. Other 4xx (bad key, bad request) are not retried.
 */
export const aiRetrySchedule = Schedule.exponential("500 millis").pipe(
  Schedule.jittered,
  Schedule.modifyDelay(({ input, duration }: { input: LlmError; duration: Duration.Duration }) =>
    Effect.succeed(
      input.retryAfterSeconds !== undefined
        ? Duration.max(Duration.seconds(Math.min(input.retryAfterSeconds, 60)), duration)
        : duration
    )
  ),
  Schedule.upTo({ times: 4 }),
  Schedule.while(({ input }) => input.status === 0 || input.status === 408 || input.status === 429 || input.status >= 500)
)

const retryAfterSeconds = (headers: Headers | undefined): number | undefined => {
  const value = headers?.get("retry-after")
  if (value === null || value === undefined) return undefined
  const seconds = Number(value)
  if (Number.isFinite(seconds)) return Math.max(0, seconds)
  const date = Date.parse(value)
  return Number.isNaN(date) ? undefined : Math.max(0, (date - Date.now()) / 1000)
}

/**
 * Error text comes from the LLM server, which may quote the key back ("Incorrect API key
 * provided: sk-...abcd"): the key and anything shaped like one are cut out before the text
 * reaches a log line or the database.
 */
const scrubbed = (text: string, apiKey: string): string =>
  text.replaceAll(apiKey, "[redacted]").replace(/\b(sk|key|api)[-_][A-Za-z0-9_*.-]{6,}/gi, "[redacted]")

const toLlmError = (apiKey: string) => (cause: unknown): LlmError => {
  if (cause instanceof OpenAI.APIError) {
    const after = retryAfterSeconds(cause.headers)
    return new LlmError({
      status: cause.status ?? 0,
      ...(after !== undefined ? { retryAfterSeconds: after } : {}),
      message: scrubbed(cause.message, apiKey)
    })
  }
  return new LlmError({ status: 0, message: scrubbed(cause instanceof Error ? cause.message : String(cause), apiKey) })
}

export class Ai extends Context.Service<Ai, {
  readonly model: string
  /** Streams the answer; closing the stream's scope (interruption) aborts the HTTP request. */
  readonly streamChat: (
    messages: ReadonlyArray<ChatMessage>,
    options: { readonly maxTokens: number }
  ) => Stream.Stream<AiChunk, LlmError>
}>()("bot/Ai") {
  static readonly layer = Layer.effect(
    Ai,
    Effect.gen(function*() {
      const config = yield* AppConfig
      const client = new OpenAI({
        apiKey: Redacted.value(config.openaiApiKey),
        ...Option.match(config.openaiBaseUrl, { onNone: () => ({}), onSome: (baseURL) => ({ baseURL }) }),
        maxRetries: 0 // retries are ours, declared above, so they are visible and interruptible
      })
      const model = config.openaiModel
      const toError = toLlmError(Redacted.value(config.openaiApiKey))

      const open = (messages: ReadonlyArray<ChatMessage>, maxTokens: number) =>
        Effect.gen(function*() {
          const controller = yield* Effect.acquireRelease(
            Effect.sync(() => new AbortController()),
            (controller) => Effect.sync(() => controller.abort())
          )
          const startedAt = Date.now()
          const stream = yield* Effect.tryPromise({
            try: () =>
              client.chat.completions.create(
                {
                  model,
                  messages: messages.map((m) => ({ role: m.role, content: m.content })),
                  stream: true,
                  stream_options: { include_usage: true },
                  max_completion_tokens: maxTokens
                },
                { signal: controller.signal, timeout: Duration.toMillis(firstByteTimeout) }
              ),
            catch: toError
          })
          return { stream, startedAt }
        }).pipe(
          Effect.tapError((error) => Metric.update(Metric.withAttributes(llmErrors, { status: String(error.status) }), 1))
        )

      const streamChat = (messages: ReadonlyArray<ChatMessage>, options: { readonly maxTokens: number }) =>
        Stream.unwrap(
          Effect.gen(function*() {
            const { startedAt, stream } = yield* open(messages, options.maxTokens).pipe(Effect.retry(aiRetrySchedule))
            let first = true
            return Stream.fromAsyncIterable(stream, toError).pipe(
              Stream.timeoutOrElse({
                duration: idleChunkTimeout,
                orElse: () => Stream.fail(new LlmError({ status: 0, message: "the LLM stream stalled" }))
              }),
              Stream.mapEffect((chunk) =>
                Effect.gen(function*() {
                  const out: Array<AiChunk> = []
                  const text = chunk.choices[0]?.delta?.content
                  if (text) {
                    if (first) {
                      first = false
                      yield* Metric.update(llmTimeToFirstToken, (Date.now() - startedAt) / 1000)
                    }
                    out.push({ _tag: "Delta", text })
                  }
                  if (chunk.usage) {
                    const usage = { tokensIn: chunk.usage.prompt_tokens, tokensOut: chunk.usage.completion_tokens }
                    yield* Metric.update(Metric.withAttributes(llmTokens, { direction: "in", model }), usage.tokensIn)
                    yield* Metric.update(Metric.withAttributes(llmTokens, { direction: "out", model }), usage.tokensOut)
                    out.push({ _tag: "Usage", ...usage })
                  }
                  return out
                })
              ),
              Stream.flattenIterable
            )
          })
        )

      return Ai.of({ model, streamChat })
    })
  )
}
