/**
 * A tracer for the benchmark (--trace): every span the program creates is timed and summed up by
 * name (SQL spans by the start of their statement), so the figures say where a request or a turn
 * waits, stage by stage. It only measures; the spans are those the program already creates.
 */
import { type Exit, Tracer } from "effect"
import { percentile } from "./lib.ts"

const maxSamplesPerName = 100_000

export class SpanStats {
  readonly #durations = new Map<string, Array<number>>()
  #enabled = false

  readonly tracer = Tracer.make({
    span: (options) => {
      const stats = this
      return new (class extends Tracer.NativeSpan {
        override end(endTime: bigint, exit: Exit.Exit<unknown, unknown>): void {
          super.end(endTime, exit)
          if (stats.#enabled) stats.#record(this, Number(endTime - this.status.startTime) / 1e6)
        }
      })(options)
    }
  })

  reset(): void {
    this.#durations.clear()
    this.#enabled = true
  }

  #record(span: Tracer.NativeSpan, ms: number): void {
    const statement = span.attributes.get("db.statement") ?? span.attributes.get("db.query.text")
    const key = typeof statement === "string"
      ? `${span.name}: ${statement.replace(/\s+/g, " ").trim().slice(0, 60)}`
      : span.name
    const list = this.#durations.get(key) ?? []
    if (list.length < maxSamplesPerName) list.push(ms)
    this.#durations.set(key, list)
  }

  /** Per span name: count, total, p50, p99 (ms); the largest totals first. */
  summary(top = 30): Array<{ readonly name: string; readonly count: number; readonly totalMs: number; readonly p50Ms: number; readonly p99Ms: number }> {
    return [...this.#durations.entries()]
      .map(([name, list]) => ({
        name,
        count: list.length,
        totalMs: list.reduce((a, b) => a + b, 0),
        p50Ms: percentile(list, 50),
        p99Ms: percentile(list, 99)
      }))
      .sort((a, b) => b.totalMs - a.totalMs)
      .slice(0, top)
  }
}
