import { NodeHttpServer } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { HttpRouter } from "effect/http"
import { createServer } from "node:http"
import { AppConfig } from "../services/platform/AppConfig.ts"
import { HealthRoutes } from "./HealthRoutes.ts"
import { LemonSqueezyRoutes } from "./LemonSqueezyRoutes.ts"
import { TelegramRoutes } from "./TelegramRoutes.ts"

/** Every route group, served on PORT (all interfaces: Caddy or Telegram must reach it). */
export const HttpServerLive = Layer.unwrap(Effect.gen(function*() {
  const config = yield* AppConfig
  // The router's per-request log line costs three quarters of the throughput: off.
  return HttpRouter.serve(Layer.mergeAll(TelegramRoutes, LemonSqueezyRoutes, HealthRoutes), { disableLogger: true }).pipe(
    Layer.provide(NodeHttpServer.layer(createServer, { port: config.port, host: "0.0.0.0" }))
  )
}))
