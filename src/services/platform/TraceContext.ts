import { Effect, Option, type Tracer } from "effect"
import { Headers, HttpTraceContext } from "effect/http"

/**
 * A span as a W3C `traceparent` (https://www.w3.org/TR/trace-context/), to be stored with a
 * message or carried by a wake-up, so that the work it causes later, maybe in another process,
 * joins the same trace.
 */
export const traceparentOf = (span: Tracer.Span): string | undefined => HttpTraceContext.toHeaders(span)["traceparent"]

/** The current span's `traceparent`, if there is a current span. */
export const currentTraceparent: Effect.Effect<string | undefined> = Effect.currentSpan.pipe(
  Effect.map(traceparentOf),
  Effect.orElseSucceed(() => undefined)
)

/**
 * Runs `effect` as part of the trace a stored `traceparent` names (its spans become children of
 * that span), or as it would run without one when there is none or it cannot be read.
 */
export const inTrace = (traceparent: string | null | undefined) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Option.match(
    traceparent ? HttpTraceContext.w3c(Headers.fromInput({ traceparent })) : Option.none(),
    { onNone: () => effect, onSome: (parent) => Effect.withParentSpan(effect, parent) }
  )
