/**
 * The product: the real program (src/layers/Programs.ts) in its own process, configured from the
 * JSON environment given in argv, exactly as src/main/api.ts / all.ts would run it.
 *
 * argv = "api" | "all", JSON of the environment, "count-writes" | "-", "trace" | "-". Says
 * { type: "ready" } once the layers are built (migrations applied, webhook registered with the
 * fake Telegram, server listening). Answers "cpu" (CPU, memory, event-loop delay), "writes",
 * "spans", the profiler's messages (lib.ts serveProfiler), and on "stop" closes its scope
 * (finalizers run) and exits. The diagnostics only observe: the program is the one src/ builds.
 */
import { ConfigProvider, Effect, Exit, Layer, Scope, Tracer } from "effect"
import { Socket } from "node:net"
import { monitorEventLoopDelay } from "node:perf_hooks"
import { AllProgram, ApiProgram } from "../src/layers/Programs.ts"
import { onParentMessage, serveProfiler, toParent } from "./lib.ts"
import { SpanStats } from "./spans.ts"

const [mode, envJson, countWrites, trace] = process.argv.slice(2)

// Diagnostic (--count-writes): socket writes and bytes by remote port, to see how chatty each
// client is (Postgres, Redis, the fake Telegram / OpenAI). Patched before anything connects.
const writes = new Map<number, { count: number; bytes: number }>()
if (countWrites === "count-writes") {
  const original = Socket.prototype.write
  Socket.prototype.write = function(this: Socket, ...args: Parameters<Socket["write"]>) {
    const port = this.remotePort ?? 0
    const entry = writes.get(port) ?? { count: 0, bytes: 0 }
    entry.count += 1
    const chunk: unknown = args[0]
    entry.bytes += typeof chunk === "string" ? Buffer.byteLength(chunk) : chunk instanceof Uint8Array ? chunk.byteLength : 0
    writes.set(port, entry)
    return original.apply(this, args)
  } as Socket["write"]
}
onParentMessage("writes", () => {
  toParent({ type: "writes", writes: Object.fromEntries(writes) })
})
if ((mode !== "api" && mode !== "all") || envJson === undefined) throw new Error("usage: product-server.ts api|all ENV_JSON")
const env = JSON.parse(envJson) as Record<string, string>

// Diagnostic (--trace): time every span the program creates, by name.
const spans = new SpanStats()
const program = (mode === "api" ? ApiProgram : AllProgram).pipe(
  Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env }))),
  Layer.provide(trace === "trace" ? Layer.succeed(Tracer.Tracer, spans.tracer) : Layer.empty)
)
onParentMessage("spans-reset", () => spans.reset())
onParentMessage("spans", () => toParent({ type: "spans", spans: spans.summary() }))
const scope = Effect.runSync(Scope.make())
await Effect.runPromise(Layer.buildWithScope(program, scope))

// How long callbacks waited for the event loop: a blocked loop delays every request. The
// histogram's values include its 10 ms sampling interval, which is taken off below.
const loopDelay = monitorEventLoopDelay({ resolution: 10 })
const delayMs = (nanos: number) => Math.max(0, nanos / 1e6 - 10)
loopDelay.enable()
onParentMessage("loop-reset", () => loopDelay.reset())
onParentMessage("cpu", () => {
  toParent({
    type: "cpu",
    usage: process.cpuUsage(),
    rss: process.memoryUsage().rss,
    heapUsed: process.memoryUsage().heapUsed,
    loopDelayMs: { p50: delayMs(loopDelay.percentile(50)), p99: delayMs(loopDelay.percentile(99)), max: delayMs(loopDelay.max) }
  })
})
serveProfiler()
toParent({ type: "ready" })

onParentMessage("stop", async () => {
  await Effect.runPromise(Scope.close(scope, Exit.void))
  // Let the event loop drain rather than exit at once, with a bounded fallback.
  process.disconnect?.()
  setTimeout(() => process.exit(0), 5_000).unref()
})
process.on("disconnect", () => {
  setTimeout(() => process.exit(0), 5_000).unref()
})
