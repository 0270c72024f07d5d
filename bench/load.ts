/**
 * The load generator, in its own process: autocannon POSTing realistic Telegram text-message
 * updates, each body different (unique update_id, many distinct users and chats).
 *
 * argv = connections. Long-lived, so that its own JIT is warm for every measured window: on
 * { type: "run", url, seconds, firstId } it runs one fixed-duration load and answers
 * { type: "result", figures }; it exits on { type: "stop" } or when the parent goes away.
 */
import autocannon from "autocannon"
import { onParentMessage, percentile, textUpdateBody, toParent, webhookSecret } from "./lib.ts"

const [connectionsArg] = process.argv.slice(2)
if (connectionsArg === undefined) throw new Error("usage: load.ts CONNECTIONS")
const connections = Number(connectionsArg)

/** At most this many latencies are kept (far above what one window can produce here). */
const maxSamples = 2_000_000

export interface LoadFigures {
  readonly seconds: number
  readonly responses: number
  readonly ok: number
  readonly non2xx: number
  readonly errors: number
  readonly timeouts: number
  readonly statusCodes: Record<string, number>
  readonly p50Ms: number
  readonly p90Ms: number
  readonly p99Ms: number
  readonly maxMs: number
  readonly meanMs: number
  readonly firstId: number
  readonly lastId: number
}

const run = (url: string, seconds: number, firstId: number): Promise<LoadFigures> =>
  new Promise((resolve, reject) => {
    let nextId = firstId
    const latencies = new Float64Array(maxSamples)
    let samples = 0
    const statusCodes: Record<string, number> = {}
    const startedAt = performance.now()
    const instance = autocannon(
      {
        url: `${url}/telegram/webhook`,
        connections,
        duration: seconds,
        timeout: 10,
        method: "POST",
        headers: { "content-type": "application/json", "x-telegram-bot-api-secret-token": webhookSecret },
        requests: [
          {
            method: "POST",
            path: "/telegram/webhook",
            setupRequest: (request) => ({ ...request, body: textUpdateBody(nextId++) })
          }
        ]
      },
      (error, result) => {
        if (error) return reject(error)
        const kept = latencies.subarray(0, samples)
        let sum = 0
        let max = 0
        for (const value of kept) {
          sum += value
          if (value > max) max = value
        }
        const values = Array.from(kept)
        resolve({
          seconds: (performance.now() - startedAt) / 1000,
          responses: samples,
          ok: result["2xx"],
          non2xx: result.non2xx,
          errors: result.errors,
          timeouts: result.timeouts,
          statusCodes,
          p50Ms: percentile(values, 50),
          p90Ms: percentile(values, 90),
          p99Ms: percentile(values, 99),
          maxMs: max,
          meanMs: samples === 0 ? Number.NaN : sum / samples,
          firstId,
          lastId: nextId - 1
        })
      }
    )
    instance.on("response", (_client, statusCode, _bytes, responseTime) => {
      statusCodes[statusCode] = (statusCodes[statusCode] ?? 0) + 1
      if (samples < maxSamples) latencies[samples++] = responseTime
    })
  })

onParentMessage("run", async (message) => {
  try {
    const figures = await run(String(message.url), Number(message.seconds), Number(message.firstId))
    toParent({ type: "result", figures })
  } catch (error) {
    toParent({ type: "failed", message: String(error) })
  }
})
onParentMessage("stop", () => process.exit(0))
process.on("disconnect", () => process.exit(0))
toParent({ type: "ready" })
