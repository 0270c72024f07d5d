import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { describe, expect, it } from "vitest"
import { textMessageUpdate } from "../support/telegram/FakeTelegram.ts"
import { startStack, waitForStatus } from "../support/Stack.ts"

interface OtlpTraces {
  readonly resourceSpans: ReadonlyArray<{
    readonly scopeSpans: ReadonlyArray<{ readonly spans: ReadonlyArray<{ readonly name: string; readonly traceId: string }> }>
  }>
}

describe("OTLP trace export", () => {
  it("sends the spans of a webhook-to-reply turn to OTEL_EXPORTER_OTLP_ENDPOINT, one trace per update", async () => {
    const bodies: Array<{ path: string; body: string }> = []
    const collector = createServer((req, res) => {
      let body = ""
      req.on("data", (chunk) => (body += String(chunk)))
      req.on("end", () => {
        bodies.push({ path: req.url ?? "", body })
        res.writeHead(200, { "content-type": "application/json" }).end("{}")
      })
    })
    await new Promise<void>((resolve) => collector.listen(0, "127.0.0.1", resolve))
    const endpoint = `http://127.0.0.1:${(collector.address() as AddressInfo).port}`
    const stack = await startStack({ env: { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint } })
    try {
      await stack.post({ update_id: 6001, ...textMessageUpdate({ chatId: 6001, text: "trace me" }) })
      await stack.post({ update_id: 6002, ...textMessageUpdate({ chatId: 6002, text: "and me" }) })
      await waitForStatus(stack, 6001, "answered")
      await waitForStatus(stack, 6002, "answered")
      await stack.stopProgram() // flushes the exporter
      const exported = bodies.filter((b) => b.path === "/v1/traces").map((b) => b.body).join("\n")
      for (const span of ["ChatTurn.run", "Mailbox.claimNext", "Telegram.sendMessage", "ChatWorker.handle"]) {
        expect(exported).toContain(`"${span}"`)
      }
      expect(exported).toContain("telegram-ai-bot")
      const spans = bodies
        .filter((b) => b.path === "/v1/traces")
        .flatMap((b) => (JSON.parse(b.body) as OtlpTraces).resourceSpans.flatMap((r) => r.scopeSpans.flatMap((s) => s.spans)))
      // One trace per update, end to end: the webhook request that stored it (its traceparent is
      // kept with the message), the queue wake-up, the worker's turn and its Telegram calls.
      const traceOf = (updateId: number) => stack.query(`select trace_context from messages where update_id = ${updateId}`).split("-")[1]
      const [first, second] = [traceOf(6001), traceOf(6002)]
      expect(first).toMatch(/^[0-9a-f]{32}$/)
      expect(second).not.toBe(first)
      for (const trace of [first, second]) {
        const names = spans.filter((span) => span.traceId === trace).map((span) => span.name)
        for (const name of ["Inbox.acceptBatch", "ChatWorker.handle", "ChatTurn.run", "Mailbox.complete", "Telegram.sendMessage"]) {
          expect(names, `${name} in the trace of ${trace}`).toContain(name)
        }
        expect(names.some((name) => /POST|http/i.test(name)), `the webhook request's span in ${names.join(", ")}`).toBe(true)
      }
      expect(exported).not.toContain(stack.env.OPENAI_API_KEY!)
      expect(exported).not.toContain(stack.env.TELEGRAM_BOT_TOKEN!)
    } finally {
      await stack.stop()
      await new Promise<void>((resolve) => collector.close(() => resolve()))
    }
  })
})
