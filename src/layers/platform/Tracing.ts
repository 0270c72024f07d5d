import { Effect, Layer, Option } from "effect"
import { FetchHttpClient } from "effect/http"
import { OtlpSerialization, OtlpTracer } from "effect/observability"
import { AppConfig } from "../../services/platform/AppConfig.ts"

/**
 * Spans (every service method is an Effect.fn span) exported over OTLP/HTTP when
 * OTEL_EXPORTER_OTLP_ENDPOINT is set, e.g. to an OpenTelemetry collector or Tempo. Without it,
 * spans still give the trace and span ids that every log line carries.
 */
export const layer = Layer.unwrap(Effect.gen(function*() {
  const config = yield* AppConfig
  return Option.match(config.otlpEndpoint, {
    onNone: () => Layer.empty,
    onSome: (endpoint) =>
      OtlpTracer.layer({
        url: `${endpoint}/v1/traces`,
        resource: { serviceName: "telegram-ai-bot" },
        exportInterval: "5 seconds"
      }).pipe(Layer.provide(OtlpSerialization.layerJson), Layer.provide(FetchHttpClient.layer))
  })
}))
