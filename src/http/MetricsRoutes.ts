import { Effect, Option, Redacted } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { PrometheusMetrics } from "effect/observability"
import { Subscriptions } from "../services/billing/Subscriptions.ts"
import { AppConfig, isLoopbackHost } from "../services/platform/AppConfig.ts"
import { serve } from "./instrument.ts"
import { matchesSecret, secretDigest } from "./secret.ts"

/**
 * Who may read /metrics (issue 9): with METRICS_TOKEN set, only `Authorization: Bearer <token>`;
 * without it, a direct client on this machine when the server listens on loopback (METRICS_PORT,
 * or HOST 127.0.0.1) and no proxy forwarded the request, and nobody otherwise (401: the metrics
 * tell how many people pay and chat).
 */
export type MetricsAccess = { readonly _tag: "Token"; readonly digest: Buffer } | { readonly _tag: "Open" } | { readonly _tag: "Closed" }

/** Whether a proxy forwarded the request (Caddy, nginx and the like add one of these). */
const proxied = (headers: Readonly<Record<string, string | undefined>>) =>
  headers["x-forwarded-for"] !== undefined || headers["forwarded"] !== undefined || headers["x-real-ip"] !== undefined

/** The access rule for a server listening on `host`. */
export const metricsAccess = (token: Option.Option<Redacted.Redacted>, host: string): MetricsAccess =>
  Option.match(token, {
    onSome: (t) => ({ _tag: "Token", digest: secretDigest(`Bearer ${Redacted.value(t)}`) }),
    onNone: () => (isLoopbackHost(host) ? { _tag: "Open" } : { _tag: "Closed" })
  })

/**
 * GET /metrics: Prometheus text, for the server listening on `host` (see MetricsAccess). Closed,
 * it says so once at start with what to set.
 */
export const MetricsRoutes = (host: string) =>
  HttpRouter.use(Effect.fnUntraced(function*(router) {
    const config = yield* AppConfig
    const subscriptions = yield* Subscriptions
    const access = metricsAccess(config.metricsToken, host)
    if (access._tag === "Closed") {
      yield* Effect.logWarning("GET /metrics is closed: set METRICS_TOKEN, or METRICS_PORT to serve it on 127.0.0.1", { host })
    }
    yield* serve(
      router,
      "GET",
      "/metrics",
      Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        if (access._tag === "Closed") return HttpServerResponse.empty({ status: 401 })
        if (access._tag === "Token" && !matchesSecret(access.digest, request.headers["authorization"])) {
          return HttpServerResponse.empty({ status: 401 })
        }
        // Open on loopback, but not through a proxy on this machine: that request came from outside.
        if (access._tag === "Open" && proxied(request.headers)) return HttpServerResponse.empty({ status: 401 })
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
