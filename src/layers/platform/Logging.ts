import { Cause, Context, Effect, Layer, Logger, References, Tracer } from "effect"
import { BaseConfig } from "../../services/platform/AppConfig.ts"

/** The line's own keys: a detail of the same name does not overwrite them. */
const reserved = new Set(["time", "level", "message", "trace_id", "span_id", "cause"])

/**
 * One JSON object per line on stdout: time, level, message, the fiber's log annotations
 * (update_id, chat_id, ...), the call's details and the current trace and span ids. The message
 * stays a fixed sentence, so lines can be counted and searched by it: `Effect.logWarning("turn
 * failed", error.message)` puts the further strings in an `error` field, and an object's keys
 * become fields (`{ url }`). Values reach the line only through their JSON form, so a Redacted
 * secret prints as "<redacted>".
 */
const jsonLogger = Logger.make(({ cause, date, fiber, logLevel, message }) => {
  const line: Record<string, unknown> = { time: date.toISOString(), level: logLevel.toUpperCase() }
  const [first, ...details] = Array.isArray(message) ? message : [message]
  line.message = typeof first === "string" ? first : safeJson(first)
  const errors: Array<string> = []
  for (const detail of details) {
    if (Cause.isCause(detail)) {
      if (detail.reasons.length > 0) line.cause = Cause.pretty(detail)
    } else if (typeof detail === "object" && detail !== null && !Array.isArray(detail)) {
      for (const [key, value] of Object.entries(JSON.parse(safeJson(detail)) as Record<string, unknown>)) {
        if (!reserved.has(key)) line[key] = value
      }
    } else errors.push(typeof detail === "string" ? detail : safeJson(detail))
  }
  if (errors.length > 0) line.error = errors.join(" ")
  for (const [key, value] of Object.entries(fiber.getRef(References.CurrentLogAnnotations))) {
    if (!reserved.has(key)) line[key] = value
  }
  const span = Context.getOrUndefined(fiber.context, Tracer.ParentSpan)
  if (span !== undefined) {
    line.trace_id = span.traceId
    line.span_id = span.spanId
  }
  if (cause.reasons.length > 0 && line.cause === undefined) line.cause = Cause.pretty(cause)
  process.stdout.write(safeJson(line) + "\n")
})

const safeJson = (value: unknown): string => {
  try {
    return JSON.stringify(value, (_key, v) => (typeof v === "bigint" ? v.toString() : v))
  } catch {
    return String(value)
  }
}

/** The JSON logger at LOG_LEVEL, replacing Effect's default one. */
export const layer = Layer.unwrap(
  Effect.gen(function*() {
    const config = yield* BaseConfig
    return Layer.mergeAll(
      Logger.layer([jsonLogger]),
      Layer.succeed(References.MinimumLogLevel, config.logLevel)
    )
  })
)
