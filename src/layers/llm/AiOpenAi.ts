import OpenAI from "openai"
import { Clock, Duration, Effect, Layer, Metric, Option, Redacted, Schedule, Stream } from "effect"
import type { ChatMessage } from "../../schema/llm/ChatMessage.ts"
import { Ai, type AiChunk, LlmError } from "../../services/llm/Ai.ts"
import { encodingOf } from "../../services/llm/Tokenizer.ts"
import { AppConfig } from "../../services/platform/AppConfig.ts"
import { retryAfterBackoff } from "../../services/platform/Backoff.ts"
import { causeChain } from "../../services/platform/CauseChain.ts"
import { llmErrors, llmTimeToFirstToken, llmTokens } from "../../services/platform/Metrics.ts"

/** Waiting for the first byte of an answer; a stream that stalls longer between chunks fails too. */
const firstByteTimeout = Duration.seconds(60)
const idleChunkMillis = 60_000
/** The longest Retry-After honoured (seconds): a longer one is not worth holding a turn for. */
const maxRetryAfterSeconds = 60

/**
 * 429, 408, 5xx, timeouts and network errors: exponential backoff from 500 ms with jitter, at
 * least the server's Retry-After (capped at 60 s), four retries at most. Other 4xx (bad key, bad
 * request) are not retried.
 */
export const aiRetrySchedule = retryAfterBackoff<LlmError>({
  base: "500 millis",
  times: 4,
  retryAfterSeconds: (error) =>
    error.retryAfterSeconds === undefined ? undefined : Math.min(error.retryAfterSeconds, maxRetryAfterSeconds)
}).pipe(
  Schedule.while(({ input }) => input.status === 0 || input.status === 408 || input.status === 429 || input.status >= 500)
)

/** Retry-After as seconds (RFC 9110: delay-seconds or an HTTP date, read against `now`, epoch ms). */
export const retryAfterSeconds = (headers: Headers | undefined, now: number): number | undefined => {
  const value = headers?.get("retry-after")
  if (value === null || value === undefined) return undefined
  const seconds = Number(value)
  if (Number.isFinite(seconds)) return Math.max(0, seconds)
  const date = Date.parse(value)
  return Number.isNaN(date) ? undefined : Math.max(0, (date - now) / 1000)
}

/**
 * What an LLM server's error status means, in our words: its own text is never kept, since it
 * may quote the key back, whole or in part ("Incorrect API key provided: sk-logte*****6789";
 * issue 9), or say anything at all.
 */
const describeStatus = (status: number): string =>
  status === 401
    ? "the LLM server refused the API key (OPENAI_API_KEY)"
    : status === 403
    ? "the API key may not use this model or endpoint"
    : status === 404
    ? "the model or endpoint does not exist there (OPENAI_MODEL, OPENAI_BASE_URL)"
    : status === 408
    ? "the LLM server timed out"
    : status === 429
    ? "the LLM provider is rate limiting this key or its quota is used up"
    : status >= 500
    ? "the LLM server failed"
    : status >= 400
    ? "the LLM server refused the request"
    : "the LLM server answered with an error"

/** The provider's error type or code, kept when it is an identifier ("invalid_api_key", "insufficient_quota"). */
const errorKind = (error: InstanceType<typeof OpenAI.APIError>): string | undefined =>
  [error.code, error.type].find((kind): kind is string => typeof kind === "string" && /^[A-Za-z0-9_.-]{1,64}$/.test(kind))

/**
 * Network failures name what the SDK wraps (host, error code: our own runtime's words); the
 * key is cut out all the same, in case a URL carried it.
 */
const scrubbed = (text: string, apiKey: string): string =>
  text.replaceAll(apiKey, "[redacted]").replace(/\b(sk|key|api)[-_][A-Za-z0-9_*.-]{6,}/gi, "[redacted]")

/** The SDK's error -> LlmError, at `now` (epoch ms: when the error came, for a Retry-After date). */
export const toLlmError = (apiKey: string, now: number) => (cause: unknown): LlmError => {
  if (cause instanceof OpenAI.APIError && cause.status !== undefined) {
    const after = retryAfterSeconds(cause.headers, now)
    const kind = errorKind(cause)
    return new LlmError({
      status: cause.status,
      ...(after !== undefined ? { retryAfterSeconds: after } : {}),
      message: `${cause.status}${kind === undefined ? "" : ` ${kind}`}: ${describeStatus(cause.status)}`
    })
  }
  // An error event inside the stream (no HTTP status): the server's words are not kept either.
  if (cause instanceof OpenAI.APIError && !(cause instanceof OpenAI.APIConnectionError)) {
    const kind = errorKind(cause)
    return new LlmError({ status: 0, message: `${kind === undefined ? "" : `${kind}: `}the LLM server sent an error in the stream` })
  }
  // No answer at all (the SDK's "Connection error."): what it wraps names the host and the code.
  return new LlmError({ status: 0, message: scrubbed(causeChain(cause), apiKey) })
}

/** The openai SDK on OPENAI_API_KEY, OPENAI_BASE_URL and OPENAI_MODEL; its own retries off. */
export const layer = Layer.effect(
  Ai,
  Effect.gen(function*() {
    const config = yield* AppConfig
    const apiKey = Redacted.value(config.openaiApiKey)
    const client = new OpenAI({
      apiKey,
      ...Option.match(config.openaiBaseUrl, { onNone: () => ({}), onSome: (baseURL) => ({ baseURL }) }),
      maxRetries: 0 // retries are ours, declared above, so they are visible and interruptible
    })
    const model = config.openaiModel
    // OpenAI's API takes max_completion_tokens (max_tokens is deprecated there and refused by its
    // reasoning models, on Azure and gateways too); many OpenAI-compatible servers of other
    // models (vLLM, llama.cpp, Ollama...) only know max_tokens: both go to those, so the answer
    // is bounded on every server.
    const isOpenAi = Option.match(config.openaiBaseUrl, { onNone: () => true, onSome: (url) => new URL(url).hostname === "api.openai.com" }) ||
      encodingOf(model).exact
    const countTokens = (direction: "in" | "out", tokens: number) =>
      Metric.update(Metric.withAttributes(llmTokens, { direction, model }), tokens)

    /** Opens the streamed completion (one attempt) and notes when; the scope's close aborts it. */
    const open = Effect.fnUntraced(function*(messages: ReadonlyArray<ChatMessage>, maxTokens: number) {
      const controller = yield* Effect.acquireRelease(
        Effect.sync(() => new AbortController()),
        (controller) => Effect.sync(() => controller.abort())
      )
      const startedAt = yield* Clock.currentTimeMillis
      const stream = yield* Effect.tryPromise({
        try: () =>
          client.chat.completions.create(
            {
              model,
              messages: messages.map((m) => ({ role: m.role, content: m.content })),
              stream: true,
              stream_options: { include_usage: true },
              max_completion_tokens: maxTokens,
              ...(isOpenAi ? {} : { max_tokens: maxTokens })
            },
            { signal: controller.signal, timeout: Duration.toMillis(firstByteTimeout) }
          ),
        catch: (cause) => cause
      }).pipe(
        Effect.catch((cause) => Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.fail(toLlmError(apiKey, now)(cause)))),
        Effect.tapError((error) => Metric.update(Metric.withAttributes(llmErrors, { status: String(error.status) }), 1))
      )
      return { stream, startedAt, controller }
    })

    const streamChat = (messages: ReadonlyArray<ChatMessage>, options: { readonly maxTokens: number }) =>
      Stream.unwrap(
        Effect.gen(function*() {
          // Time to first token counts from the attempt that answered, not from the first one.
          const { controller, startedAt, stream } = yield* open(messages, options.maxTokens).pipe(Effect.retry(aiRetrySchedule))
          // A stream quiet for idleChunkMillis is aborted by one watchdog that sleeps until the
          // quiet could be that long: a timer raced against every chunk cost a quarter of the
          // stream's CPU (issue 10, 300 streams at once: 330 -> 240 us a chunk).
          let lastChunkAt = startedAt
          let stalled = false
          yield* Effect.forkScoped(Effect.gen(function*() {
            while (true) {
              const quietFor = (yield* Clock.currentTimeMillis) - lastChunkAt
              if (quietFor >= idleChunkMillis) break
              yield* Effect.sleep(Duration.millis(idleChunkMillis - quietFor))
            }
            stalled = true
            controller.abort()
          }))
          const stalledError = () => new LlmError({ status: 0, message: "the LLM stream stalled" })
          let first = true
          return Stream.fromAsyncIterable(stream, (cause) => (stalled ? stalledError() : toLlmError(apiKey, startedAt)(cause))).pipe(
            // The SDK ends an aborted stream quietly: cut short by the watchdog, it is a failure.
            Stream.concat(Stream.suspend(() => (stalled ? Stream.fail(stalledError()) : Stream.empty))),
            Stream.mapEffect(Effect.fnUntraced(function*(chunk) {
              const now = yield* Clock.currentTimeMillis
              lastChunkAt = now
              const out: Array<AiChunk> = []
              const text = chunk.choices[0]?.delta?.content
              if (text) {
                if (first) {
                  first = false
                  yield* Metric.update(llmTimeToFirstToken, (now - startedAt) / 1000)
                }
                out.push({ _tag: "Delta", text })
              }
              if (chunk.usage) {
                yield* countTokens("in", chunk.usage.prompt_tokens)
                yield* countTokens("out", chunk.usage.completion_tokens)
                out.push({ _tag: "Usage", tokensIn: chunk.usage.prompt_tokens, tokensOut: chunk.usage.completion_tokens })
              }
              return out
            })),
            Stream.flattenIterable
          )
        })
      ).pipe(Stream.withSpan("Ai.streamChat", { attributes: { model } }))

    const checkKey = Effect.tryPromise({
      try: (signal) => client.models.list({ signal, timeout: Duration.toMillis(firstByteTimeout) }),
      catch: (cause) => cause
    }).pipe(
      Effect.catch((cause) => Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.fail(toLlmError(apiKey, now)(cause)))),
      Effect.asVoid,
      Effect.withSpan("Ai.checkKey")
    )

    return Ai.of({ model, streamChat, checkKey })
  })
)
