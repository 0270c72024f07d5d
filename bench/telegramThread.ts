/**
 * The fake Telegram on a thread of its own, for bench/ceiling.ts: each call's arrival time is
 * taken on an event loop that serves Telegram only, not on the bench's, which posts the burst
 * and streams every LLM answer (its delays reached 80-130 ms, so calls that arrived apart were
 * stamped together and a busiest second counted more than arrived in any second). The fake
 * OpenAI stays on the bench's loop: LLM request times are taken there.
 *
 * The bench thread keeps a copy of the calls (`calls`), brought over every 10 ms with the status
 * of the calls that finished since.
 */
import { monitorEventLoopDelay } from "node:perf_hooks"
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads"
import { startFakeTelegram, type TelegramCall } from "../test/support/telegram/FakeTelegram.ts"

/** What the thread sends: new calls, the calls (by index) that got their status since, or an answer. */
type Update =
  | { readonly kind: "calls"; readonly added: ReadonlyArray<TelegramCall>; readonly finished: ReadonlyArray<[number, number, string | undefined]> }
  | { readonly kind: "ready"; readonly url: string }
  | { readonly kind: "done"; readonly id: number; readonly loopDelayMaxMs?: number }

type Request = { readonly kind: "reset" | "loopDelay" | "close"; readonly id: number }

/** The fake Telegram on its own thread, as bench/ceiling.ts uses it. */
export interface ThreadedTelegram {
  readonly url: string
  /** Every call so far, as the fake recorded it (arrival time taken on the fake's thread). */
  readonly calls: Array<TelegramCall>
  /** Forgets the calls (the fake's and this copy) and restarts the loop-delay record. */
  readonly reset: () => Promise<void>
  /** The fake thread's own event-loop delay, max since the last reset (ms): its timestamps are this late at worst. */
  readonly loopDelayMaxMs: () => Promise<number>
  readonly close: () => Promise<void>
}

/** Starts the fake Telegram (bot token `token`) on a new thread. */
export const startTelegramThread = async (token: string): Promise<ThreadedTelegram> => {
  const worker = new Worker(new URL(import.meta.url), { workerData: { token } })
  const calls: Array<TelegramCall> = []
  interface Asked {
    readonly answered: (update: Update & { kind: "done" }) => void
    readonly failed: (error: Error) => void
  }
  const asked = new Map<number, Asked>()
  let nextId = 0
  // Once gone (a throw in the fake, or closed), every question waiting and every later one fails,
  // and the run with them: the copy of the calls would stop growing unseen.
  let gone: Error | undefined
  let closing = false
  const goneWith = (error: Error) => {
    if (gone === undefined && !closing) process.stderr.write(`${error.message}\n`)
    gone ??= error
    for (const { failed } of asked.values()) failed(gone)
    asked.clear()
  }
  const url = await new Promise<string>((resolve, reject) => {
    worker.on("error", (error) => {
      goneWith(new Error(`the fake Telegram thread failed: ${error.message}`, { cause: error }))
      reject(gone)
    })
    worker.on("exit", (code) => {
      goneWith(new Error(`the fake Telegram thread exited (code ${code})`))
      reject(gone)
    })
    worker.on("message", (update: Update) => {
      if (update.kind === "ready") resolve(update.url)
      else if (update.kind === "calls") {
        calls.push(...update.added)
        for (const [index, status, description] of update.finished) Object.assign(calls[index]!, { status, description })
      } else {
        asked.get(update.id)?.answered(update)
        asked.delete(update.id)
      }
    })
  })
  /** Asks the thread; `done` runs as the answer arrives, before any later message of the thread. */
  const ask = (kind: Request["kind"], done: () => void = () => undefined) =>
    new Promise<Update & { kind: "done" }>((resolve, reject) => {
      if (gone !== undefined) return reject(gone)
      const id = nextId++
      asked.set(id, { answered: (update) => (done(), resolve(update)), failed: reject })
      worker.postMessage({ kind, id } satisfies Request)
    })
  return {
    url,
    calls,
    reset: async () => void (await ask("reset", () => void (calls.length = 0))),
    loopDelayMaxMs: async () => (await ask("loopDelay")).loopDelayMaxMs ?? 0,
    close: async () => {
      if (gone === undefined) await ask("close")
      closing = true
      await worker.terminate()
    }
  }
}

if (!isMainThread && parentPort !== null) {
  const port = parentPort
  const fake = await startFakeTelegram({ token: (workerData as { token: string }).token })
  let delay = monitorEventLoopDelay({ resolution: 10 })
  delay.enable()
  // Calls sent over (by index), and those of them sent before they had a status (a call whose
  // handler threw never gets one, and stays here: the bench counts it as unanswered).
  let sent = 0
  let unfinished = new Set<number>()
  const flush = () => {
    const finished: Array<[number, number, string | undefined]> = []
    for (const index of unfinished) {
      const call = fake.calls[index]!
      if (call.status === undefined) continue
      finished.push([index, call.status, call.description])
      unfinished.delete(index)
    }
    const added = fake.calls.slice(sent)
    for (let index = sent; index < fake.calls.length; index++) if (fake.calls[index]!.status === undefined) unfinished.add(index)
    sent = fake.calls.length
    if (added.length > 0 || finished.length > 0) port.postMessage({ kind: "calls", added, finished } satisfies Update)
  }
  const timer = setInterval(flush, 10)
  port.on("message", async (request: Request) => {
    if (request.kind === "reset") {
      flush()
      fake.reset()
      sent = 0
      unfinished = new Set()
      delay.disable()
      delay = monitorEventLoopDelay({ resolution: 10 })
      delay.enable()
    } else if (request.kind === "close") {
      clearInterval(timer)
      await fake.close()
    }
    const loopDelayMaxMs = request.kind === "loopDelay" ? delay.max / 1e6 : undefined
    port.postMessage({ kind: "done", id: request.id, ...(loopDelayMaxMs !== undefined ? { loopDelayMaxMs } : {}) } satisfies Update)
  })
  port.postMessage({ kind: "ready", url: fake.url } satisfies Update)
}
