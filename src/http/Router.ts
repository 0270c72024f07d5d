import { NodeHttpServer } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { HttpRouter } from "effect/http"
import { createServer } from "node:http"
import { AppConfig } from "../services/platform/AppConfig.ts"
import { StartupError } from "../services/platform/StartupError.ts"
import { HealthRoutes } from "./HealthRoutes.ts"
import { LemonSqueezyRoutes } from "./LemonSqueezyRoutes.ts"
import { TelegramRoutes } from "./TelegramRoutes.ts"

/**
 * Bounds for slow or greedy clients (Node's defaults are minutes): headers must arrive within
 * 5 s and a whole request within 10 s (a body trickling in is cut), checked every second; an
 * idle keep-alive connection closes after 5 s; at most 1024 connections are open at once.
 * Telegram sends at most 40 at a time (max_connections), Prometheus one.
 */
const limits = { headersTimeout: 5_000, requestTimeout: 10_000, connectionsCheckingInterval: 1_000, keepAliveTimeout: 5_000 }
const maxConnections = 1024

const boundedServer = () => {
  const server = createServer(limits)
  server.maxConnections = maxConnections
  return server
}

/** Why PORT cannot be listened on, in one sentence. */
const portProblem = (port: number, cause: unknown) => {
  const code = (cause as NodeJS.ErrnoException | undefined)?.code
  return code === "EADDRINUSE"
    ? `PORT ${port} is in use by another program (EADDRINUSE): stop it, or set PORT to a free port.`
    : code === "EACCES"
    ? `PORT ${port} needs privileges this process does not have (EACCES): set PORT to 1024 or above.`
    : `PORT ${port} cannot be listened on: ${cause instanceof Error ? cause.message : String(cause)}.`
}

/**
 * Every route group, served on PORT (all interfaces: Caddy or Telegram must reach it), within
 * `limits`. Fails with StartupError when the port cannot be listened on.
 */
export const HttpServerLive = Layer.unwrap(Effect.gen(function*() {
  const config = yield* AppConfig
  // The router's per-request log line costs three quarters of the throughput: off.
  return HttpRouter.serve(Layer.mergeAll(TelegramRoutes, LemonSqueezyRoutes, HealthRoutes), { disableLogger: true }).pipe(
    Layer.provide(NodeHttpServer.layer(boundedServer, { port: config.port, host: "0.0.0.0" })),
    Layer.catchTag("ServeError", (error) => Layer.effectDiscard(new StartupError({ message: portProblem(config.port, error.cause) })))
  )
}))
