import { Effect, Metric } from "effect"
import type { HttpServerResponse } from "effect/http"
import { httpRequestDuration, httpRequests } from "../services/platform/Metrics.ts"

// Labelled metrics are made once per label set, not per request.
const requestCounters = new Map<string, Metric.Counter<number>>()
const countRequest = (route: string, status: number) => {
  const key = `${route} ${status}`
  let counter = requestCounters.get(key)
  if (counter === undefined) {
    counter = Metric.withAttributes(httpRequests, { route, status: String(status) })
    requestCounters.set(key, counter)
  }
  return Metric.update(counter, 1)
}

/** Counts each answer by route and status and times it; no per-request log line (hot path). */
export const instrument = <E, R>(route: string, handler: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>) => {
  const duration = Metric.withAttributes(httpRequestDuration, { route })
  return Effect.gen(function*() {
    const startedAt = performance.now()
    const response = yield* handler
    yield* countRequest(route, response.status)
    yield* Metric.update(duration, (performance.now() - startedAt) / 1000)
    return response
  })
}
