/**
 * Plumbing shared by the fake HTTP servers (FakeOpenAI, FakeTelegram): listening on an
 * ephemeral loopback port, closing, change notification, abortable delays and polling for a
 * condition.
 */
import type { Server } from "node:http"
import type { AddressInfo } from "node:net"

/** Listens on 127.0.0.1 with an ephemeral port; resolves with the root URL, e.g. `http://127.0.0.1:40123`. */
export async function listenOnLoopback(server: Server): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject)
      resolve()
    })
  })
  const { port } = server.address() as AddressInfo
  return `http://127.0.0.1:${port}`
}

/** Stops the server and cuts off every open connection (in-flight requests included). */
export async function closeServer(server: Server): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()))
  server.closeAllConnections()
  await closed
}

/** Lets waiters sleep until the next state change. */
export class ChangeNotifier {
  readonly #listeners = new Set<() => void>()

  /** Wakes every pending `next()`. */
  notify(): void {
    for (const listener of [...this.#listeners]) listener()
  }

  /** Resolves on the next `notify()`, after `timeoutMs`, or when `signal` aborts. */
  next(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer)
        this.#listeners.delete(done)
        signal?.removeEventListener("abort", done)
        resolve()
      }
      const timer = setTimeout(done, Math.max(0, timeoutMs))
      this.#listeners.add(done)
      signal?.addEventListener("abort", done, { once: true })
    })
  }
}

/** Waits `ms`, or less if `signal` aborts (not at all when `ms <= 0` or it has already aborted). */
export function delay(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0 || signal.aborted) return Promise.resolve()
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer)
      signal.removeEventListener("abort", done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    signal.addEventListener("abort", done, { once: true })
  })
}

/** How often a condition is re-evaluated when nothing has changed. */
export const POLL_INTERVAL_MS = 50

export interface WaitForConditionOptions {
  /** Prefix of the timeout error, e.g. "FakeOpenAI.waitFor". */
  readonly label: string
  readonly timeoutMs: number
  readonly notifier: ChangeNotifier
  /** Describes the current state for the timeout error, e.g. "Requests: none". */
  readonly describeState: () => string
}

/**
 * Resolves with the predicate's first truthy result. It is re-evaluated on every change and at
 * least every 50 ms; a predicate that throws counts as "not yet". Rejects after `timeoutMs` with
 * the label, the last predicate error and the described state in the message.
 */
export async function waitForCondition<T>(
  predicate: () => T | false | null | undefined,
  { label, timeoutMs, notifier, describeState }: WaitForConditionOptions
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let lastError: unknown
  for (;;) {
    try {
      const value = predicate()
      if (value !== false && value !== null && value !== undefined) return value
    } catch (error) {
      lastError = error
    }
    const remaining = deadline - Date.now()
    if (remaining <= 0) {
      const cause = lastError === undefined ? "" : ` Last predicate error: ${String(lastError)}.`
      throw new Error(`${label}: condition not met within ${timeoutMs} ms.${cause} ${describeState()}`)
    }
    await notifier.next(Math.min(remaining, POLL_INTERVAL_MS))
  }
}
