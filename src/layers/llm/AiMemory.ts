import { Cause, Context, Duration, Effect, Exit, Layer, Stream } from "effect"
import type { ChatMessage } from "../../schema/llm/ChatMessage.ts"
import { Ai, type AiChunk, LlmError } from "../../services/llm/Ai.ts"

/** What the scripted LLM answers: text streamed in pieces `delay` apart, then usage; or a failure. */
export type ScriptedAnswer =
  | { readonly _tag: "Answer"; readonly chunks: ReadonlyArray<string>; readonly delay?: Duration.Input }
  /** Streams `chunks` (if any), then fails with `error`. */
  | { readonly _tag: "Fail"; readonly error: LlmError; readonly chunks?: ReadonlyArray<string> }
  /** Streams `chunks` (if any), then never ends: only interruption stops it. */
  | { readonly _tag: "Hang"; readonly chunks?: ReadonlyArray<string> }

/** One request as the Ai service got it; `interrupted` once its stream was cut off from outside. */
export interface RecordedRequest {
  readonly messages: ReadonlyArray<ChatMessage>
  readonly maxTokens: number
  readonly interrupted: boolean
}

/** The default answer: "Echo: <the last message>" (without a group's sender label), in one chunk. */
export const echo = (messages: ReadonlyArray<ChatMessage>): ScriptedAnswer => ({
  _tag: "Answer",
  chunks: [`Echo: ${(messages.at(-1)?.content ?? "").replace(/^\[[^\]\n]*\]: /, "")}`]
})

/** Inspects and scripts the in-memory LLM of `layer`. */
export class AiScript extends Context.Service<AiScript, {
  readonly requests: Effect.Effect<ReadonlyArray<RecordedRequest>>
  /** How every later request is answered (until the next call). */
  readonly answerWith: (answer: (messages: ReadonlyArray<ChatMessage>) => ScriptedAnswer) => Effect.Effect<void>
  /** Forgets requests and goes back to `echo`. */
  readonly reset: Effect.Effect<void>
}>()("test/AiScript") {}

/** Usage as a server would count it: 1 token per 4 characters, at least 1. */
const tokens = (text: string) => Math.max(1, Math.ceil(text.length / 4))

/**
 * An LLM in memory, for service tests: answers as scripted (by default it echoes), streams with
 * delays on the Clock (so TestClock drives it), records each request, and notes when a stream
 * was interrupted. Failures are final: the live layer's retries are not replayed here.
 */
export const layer: Layer.Layer<Ai | AiScript> = Layer.effectContext(Effect.sync(() => {
  let requests: Array<{ -readonly [K in keyof RecordedRequest]: RecordedRequest[K] }> = []
  let script = echo

  const ai = Ai.of({
    model: "memory-model",
    streamChat: (messages, { maxTokens }) =>
      Stream.unwrap(Effect.sync(() => {
        const request = { messages, maxTokens, interrupted: false }
        requests.push(request)
        const answer = script(messages)
        const chunks = answer.chunks ?? []
        const delay = answer._tag === "Answer" ? Duration.fromInputUnsafe(answer.delay ?? 0) : Duration.zero
        const deltas = Stream.fromIterable(chunks).pipe(
          Stream.mapEffect((text) => Effect.as(Effect.sleep(delay), { _tag: "Delta" as const, text }))
        )
        const end: Stream.Stream<AiChunk, LlmError> = answer._tag === "Answer"
          ? Stream.succeed({ _tag: "Usage", tokensIn: tokens(messages.map((m) => m.content).join("")), tokensOut: tokens(chunks.join("")) })
          : answer._tag === "Fail"
          ? Stream.fail(answer.error)
          : Stream.never
        return Stream.concat(deltas, end).pipe(
          Stream.onExit((exit) => Effect.sync(() => {
            if (Exit.isFailure(exit) && Cause.hasInterrupts(exit.cause)) request.interrupted = true
          }))
        )
      })).pipe(Stream.withSpan("Ai.streamChat")),
    checkKey: Effect.void.pipe(Effect.withSpan("Ai.checkKey"))
  })

  const control = AiScript.of({
    requests: Effect.sync(() => requests.map((r) => ({ ...r }))),
    answerWith: (answer) => Effect.sync(() => void (script = answer)),
    reset: Effect.sync(() => {
      requests = []
      script = echo
    })
  })

  return Context.make(Ai, ai).pipe(Context.add(AiScript, control))
}))

/** An LlmError as the live layer reports one after its retries (status 0: network or timeout). */
export const llmError = (status: number, message = `HTTP ${status}`) => new LlmError({ status, message })
