import { NodeHttpServer } from "@effect/platform-node"
import { Effect, Layer, Option } from "effect"
import { HttpRouter } from "effect/http"
import { createServer } from "node:http"
import { AppConfig } from "../services/platform/AppConfig.ts"
import { StartupError } from "../services/platform/StartupError.ts"
import { HealthRoutes } from "./HealthRoutes.ts"
import { LemonSqueezyRoutes } from "./LemonSqueezyRoutes.ts"
import { MetricsRoutes } from "./MetricsRoutes.ts"
import { TelegramRoutes } from "./TelegramRoutes.ts"

/**
 * Bounds for slow or greedy clients (Node's defaults are minutes): headers must arrive within
 * 5 s and a whole request within 10 s (a body trickling in is cut), checked every second; an
 * idle keep-alive connection closes after 5 s; at most 1024 connections are open at once.
 * Telegram sends at most 40 at a time (max_connections), Prometheus one.
 */
const limits = { headersTimeout: 5_000, requestTimeout: 10_000, connectionsCheckingInterval: 1_000, keepAliveTimeout: 5_000 }
const maxConnections = 1024
/** METRICS_PORT listens on loopback only: a scraper on this machine (or a tunnel) reads it without a token. */
const metricsHost = "127.0.0.1"

const boundedServer = () => {
  const server = createServer(limits)
  server.maxConnections = maxConnections
  return server
}

/** Why `setting` (PORT, METRICS_PORT) cannot be listened on at `host`, in one sentence. */
const portProblem = (setting: string, host: string, port: number, cause: unknown) => {
  const code = (cause as NodeJS.ErrnoException | undefined)?.code
  return code === "EADDRINUSE"
    ? `${setting} ${port} is in use by another program (EADDRINUSE): stop it, or set ${setting} to a free port.`
    : code === "EACCES"
    ? `${setting} ${port} needs privileges this process does not have (EACCES): set ${setting} to 1024 or above.`
    : code === "EADDRNOTAVAIL" || code === "ENOTFOUND" || code === "EAI_AGAIN"
    ? `HOST ${host} is not an address of this machine (${code}): set HOST to one of its addresses, 127.0.0.1 or 0.0.0.0.`
    : `${setting} ${port} cannot be listened on at ${host}: ${cause instanceof Error ? cause.message : String(cause)}.`
}

/** One HTTP server for `routes` on host:port, within `limits`; StartupError naming `setting` when it cannot listen. */
const server = <R>(routes: Layer.Layer<never, never, R>, setting: string, host: string, port: number) =>
  // The router's per-request log line costs three quarters of the throughput: off.
  HttpRouter.serve(routes, { disableLogger: true }).pipe(
    Layer.provide(NodeHttpServer.layer(boundedServer, { port, host })),
    Layer.catchTag("ServeError", (error) => Layer.effectDiscard(new StartupError({ message: portProblem(setting, host, port, error.cause) })))
  )

/**
 * Every route group, served on HOST:PORT within `limits`; /metrics there too, or alone on
 * 127.0.0.1:METRICS_PORT when that is set. Fails with StartupError when a port cannot be listened on.
 */
export const HttpServerLive = Layer.unwrap(Effect.gen(function*() {
  const config = yield* AppConfig
  const routes = Layer.mergeAll(TelegramRoutes, LemonSqueezyRoutes, HealthRoutes)
  return Option.match(config.metricsPort, {
    onNone: () => server(Layer.merge(routes, MetricsRoutes(config.host)), "PORT", config.host, config.port),
    onSome: (metricsPort) =>
      Layer.merge(
        server(routes, "PORT", config.host, config.port),
        server(MetricsRoutes(metricsHost), "METRICS_PORT", metricsHost, metricsPort)
      )
  })
}))
