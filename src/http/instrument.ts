import { Effect, Metric } from "effect"
import type { HttpServerResponse } from "effect/http"
import { httpRequestDuration, httpRequests } from "../services/Metrics.ts"

/** Counts each answer by route and status and times it; no per-request log line (hot path). */
export const instrument = <E, R>(route: string, handler: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>) =>
  Effect.gen(function*() {
    const startedAt = performance.now()
    const response = yield* handler
    yield* Metric.update(Metric.withAttributes(httpRequests, { route, status: String(response.status) }), 1)
    yield* Metric.update(Metric.withAttributes(httpRequestDuration, { route }), (performance.now() - startedAt) / 1000)
    return response
  })
