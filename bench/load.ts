/**
 * The load generator, in its own process: autocannon POSTing realistic Telegram text-message
 * updates, each body different (unique update_id, many distinct users and chats). A warm-up run,
 * then the measured run, both of fixed duration.
 *
 * argv = url, connections, warm-up seconds, measured seconds, first update id.
 * Sends { type: "measure-start" } just before the measured run and { type: "result", ... } after it.
 */
import autocannon from "autocannon"
import { percentile, textUpdateBody, toParent, webhookSecret } from "./lib.ts"

const [url, connectionsArg, warmupArg, durationArg, firstIdArg] = process.argv.slice(2)
if (url === undefined || connectionsArg === undefined || warmupArg === undefined || durationArg === undefined || firstIdArg === undefined) {
  throw new Error("usage: load.ts URL CONNECTIONS WARMUP_S DURATION_S FIRST_ID")
}
const connections = Number(connectionsArg)
let nextId = Number(firstIdArg)

/** At most this many latencies are kept (far above what 10 s can produce here). */
const maxSamples = 2_000_000

interface RunFigures {
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

const run = (seconds: number): Promise<RunFigures> =>
  new Promise((resolve, reject) => {
    const latencies = new Float64Array(maxSamples)
    let samples = 0
    const statusCodes: Record<string, number> = {}
    const firstId = nextId
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

const warmup = await run(Number(warmupArg))
toParent({ type: "measure-start" })
const measured = await run(Number(durationArg))
toParent({ type: "result", warmup, measured })
process.disconnect?.()
