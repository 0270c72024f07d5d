import { Effect } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { Readiness } from "../services/platform/Readiness.ts"
import { serve } from "./instrument.ts"

/**
 * GET /health (the process answers), GET /ready (200 when the database is reachable and migrated
 * and the queue reachable, 503 otherwise).
 */
export const HealthRoutes = HttpRouter.use(Effect.fnUntraced(function*(router) {
  const readiness = yield* Readiness

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
}))
