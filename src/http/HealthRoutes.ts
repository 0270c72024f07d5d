import { Effect, Option, Redacted } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { PrometheusMetrics } from "effect/observability"
import { Subscriptions } from "../services/billing/Subscriptions.ts"
import { AppConfig } from "../services/platform/AppConfig.ts"
import { Readiness } from "../services/platform/Readiness.ts"
import { serve } from "./instrument.ts"
import { matchesSecret, secretDigest } from "./secret.ts"

/**
 * GET /health (the process answers), GET /ready (200 when the database is reachable and migrated
 * and the queue reachable, 503 otherwise), GET /metrics (Prometheus text; with METRICS_TOKEN set,
 * only for `Authorization: Bearer <token>`, else 401).
 */
export const HealthRoutes = HttpRouter.use(Effect.fnUntraced(function*(router) {
  const config = yield* AppConfig
  const readiness = yield* Readiness
  const subscriptions = yield* Subscriptions

  yield* serve(router, "GET", "/health", HttpServerResponse.json({ status: "ok" }))
  yield* serve(
    router,
    "GET",
    "/ready",
    Effect.gen(function*() {
      const { database, queue, ready } = yield* readiness.check
      return yield* HttpServerResponse.json(
        { status: ready ? "ready" : "not ready", database, queue },
        { status: ready ? 200 : 503 }
      )
    })
  )

  const token = Option.map(config.metricsToken, (t) => secretDigest(`Bearer ${Redacted.value(t)}`))
  yield* serve(
    router,
    "GET",
    "/metrics",
    Effect.gen(function*() {
      if (Option.isSome(token)) {
        const request = yield* HttpServerRequest.HttpServerRequest
        if (!matchesSecret(token.value, request.headers["authorization"])) return HttpServerResponse.empty({ status: 401 })
      }
      // The billing gauges come from the database: read now, so every API process reports the same.
      yield* subscriptions.measure.pipe(
        Effect.catchTag("StorageOutage", (error) => Effect.logDebug("billing gauges not refreshed", error.message))
      )
      return HttpServerResponse.text(yield* PrometheusMetrics.format(), {
        contentType: "text/plain; version=0.0.4; charset=utf-8"
      })
    })
  )
}))
