import { Effect, Metric } from "effect"
import { type HttpRouter, HttpServerResponse } from "effect/http"
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

type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS"
const methods: ReadonlyArray<Method> = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

/**
 * Serves `handler` (instrumented) for `method` on `path`, and answers the other methods there
 * with 405 and an Allow header (RFC 9110 15.5.6): the route exists, the method does not.
 */
export const serve = <E, R>(
  router: HttpRouter.HttpRouter,
  method: Method,
  path: `/${string}`,
  handler: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
) =>
  Effect.gen(function*() {
    yield* router.add(method, path, instrument(path, handler))
    const notAllowed = HttpServerResponse.empty({ status: 405, headers: { allow: method === "GET" ? "GET, HEAD" : method } })
    for (const other of methods) {
      if (other !== method) yield* router.add(other, path, instrument(path, Effect.succeed(notAllowed)))
    }
  })

/** An answer without a body. */
export const status = (code: number) => HttpServerResponse.empty({ status: code })

/**
 * A refusal (401, 413) given before the body is read: the connection is closed with it, so a
 * client cannot hold it open by trickling the rest of a body nobody will read.
 */
export const refusal = (code: 401 | 413) => HttpServerResponse.empty({ status: code, headers: { connection: "close" } })
