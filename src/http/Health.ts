import { Effect, Option, Redacted } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { PrometheusMetrics } from "effect/observability"
import { SqlClient } from "effect/sql"
import { sqlFileLoader } from "../layers/Database.ts"
import { AppConfig } from "../services/AppConfig.ts"
import { JobQueue } from "../services/JobQueue.ts"
import { instrument } from "./instrument.ts"
import { matchesSecret, secretDigest } from "./secret.ts"

const checkTimeout = "2 seconds"

/** GET /health (the process answers), GET /ready (database migrated, queue reachable), GET /metrics. */
export const HealthRoutes = HttpRouter.use(Effect.fnUntraced(function*(router) {
  const sql = yield* SqlClient.SqlClient
  const queue = yield* JobQueue
  const config = yield* AppConfig
  const expectedMigrations = (yield* sqlFileLoader).length

  const database = sql<{ applied: bigint }>`select count(*) as applied from effect_sql_migrations`.pipe(
    Effect.map((rows) => Number(rows[0]?.applied ?? 0) >= expectedMigrations ? "ok" : "migrations pending"),
    Effect.timeout(checkTimeout),
    Effect.catch(() => Effect.succeed("unreachable"))
  )
  const jobs = queue.ping.pipe(
    Effect.as("ok"),
    Effect.timeout(checkTimeout),
    Effect.catch(() => Effect.succeed("unreachable"))
  )

  yield* router.add("GET", "/health", instrument("/health", HttpServerResponse.json({ status: "ok" })))
  yield* router.add(
    "GET",
    "/ready",
    instrument(
      "/ready",
      Effect.gen(function*() {
        const [db, q] = yield* Effect.all([database, jobs], { concurrency: 2 })
        const ready = db === "ok" && q === "ok"
        return yield* HttpServerResponse.json(
          { status: ready ? "ready" : "not ready", database: db, queue: q },
          { status: ready ? 200 : 503 }
        )
      })
    )
  )

  const token = Option.map(config.metricsToken, (t) => secretDigest(`Bearer ${Redacted.value(t)}`))
  yield* router.add(
    "GET",
    "/metrics",
    instrument(
      "/metrics",
      Effect.gen(function*() {
        if (Option.isSome(token)) {
          const request = yield* HttpServerRequest.HttpServerRequest
          if (!matchesSecret(token.value, request.headers["authorization"])) return HttpServerResponse.empty({ status: 401 })
        }
        return HttpServerResponse.text(yield* PrometheusMetrics.format(), {
          contentType: "text/plain; version=0.0.4; charset=utf-8"
        })
      })
    )
  )
}))
