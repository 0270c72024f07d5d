import { Cause, Context, Effect, Layer, Logger, References, Tracer } from "effect"
import { BaseConfig } from "../../services/platform/AppConfig.ts"

/**
 * One JSON object per line on stdout: time, level, message, the fiber's log annotations
 * (update_id, chat_id, ...) and the current trace and span ids. Values reach the line only
 * through their JSON form, so a Redacted secret prints as "<redacted>".
 */
const jsonLogger = Logger.make(({ cause, date, fiber, logLevel, message }) => {
  const line: Record<string, unknown> = { time: date.toISOString(), level: logLevel.toUpperCase() }
  const parts = Array.isArray(message) ? message : [message]
  line.message = parts.map((part) => (typeof part === "string" ? part : safeJson(part))).join(" ")
  Object.assign(line, fiber.getRef(References.CurrentLogAnnotations))
  const span = Context.getOrUndefined(fiber.context, Tracer.ParentSpan)
  if (span !== undefined) {
    line.trace_id = span.traceId
    line.span_id = span.spanId
  }
  if (cause.reasons.length > 0) line.cause = Cause.pretty(cause)
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
