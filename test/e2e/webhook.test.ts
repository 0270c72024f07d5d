import { type AddressInfo, connect, createServer, type Socket } from "node:net"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { mentioningBot, textMessageUpdate } from "../support/telegram/FakeTelegram.ts"
import { telegramFixture } from "../support/fixtures.ts"
import { freePort, type Stack, startStack, waitForStatus, webhookSecret } from "../support/Stack.ts"

const count = (stack: Stack, table: string) => Number(stack.query(`select count(*) from ${table}`))

describe("POST /telegram/webhook", () => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack({ env: { MAX_BODY_BYTES: "4096" } })
  })
  afterAll(() => stack.stop())
  beforeEach(() => {
    stack.query("truncate telegram_updates, messages, users, chats, conversations, usage cascade")
    stack.resetFakes()
  })

  const realText = () => telegramFixture("message-private-text-language_code-IAmIrina-filetreck_bot")

  it("refuses a missing or wrong secret with 401 and stores nothing", async () => {
    const update = realText()
    expect((await stack.post(update, { "x-telegram-bot-api-secret-token": "" })).status).toBe(401)
    expect((await stack.post(update, { "x-telegram-bot-api-secret-token": webhookSecret + "x" })).status).toBe(401)
    expect((await stack.post(update, { "x-telegram-bot-api-secret-token": webhookSecret.slice(0, -1) })).status).toBe(401)
    const noHeader = await fetch(`${stack.url}/telegram/webhook`, { method: "POST", body: JSON.stringify(update) })
    expect(noHeader.status).toBe(401)
    expect(count(stack, "telegram_updates")).toBe(0)
  })

  it("answers 400 to malformed JSON, non-objects and updates without an update_id, storing nothing", async () => {
    for (const body of ["{not json", "[]", "42", "\"text\"", "null", JSON.stringify({ message: { text: "hi" } }), JSON.stringify({ update_id: "x" }), JSON.stringify({ update_id: -1 })]) {
      const res = await stack.post(body)
      expect(res.status, body).toBe(400)
    }
    expect(count(stack, "telegram_updates")).toBe(0)
  })

  it("answers 413 to a body over MAX_BODY_BYTES, storing nothing", async () => {
    const update = { update_id: 5, ...textMessageUpdate({ chatId: 7, text: "x".repeat(5000) }) }
    expect((await stack.post(update)).status).toBe(413)
    // Chunked, with no Content-Length to trust: the limit holds while reading.
    const bytes = new TextEncoder().encode(JSON.stringify(update))
    const chunked = await fetch(`${stack.url}/telegram/webhook`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-telegram-bot-api-secret-token": webhookSecret },
      body: new ReadableStream({
        start(controller) {
          for (let i = 0; i < bytes.length; i += 1000) controller.enqueue(bytes.slice(i, i + 1000))
          controller.close()
        }
      }),
      duplex: "half"
    } as RequestInit)
    expect(chunked.status).toBe(413)
    expect(count(stack, "telegram_updates")).toBe(0)
  })

  it("takes a body of exactly MAX_BODY_BYTES and refuses one byte more", async () => {
    // Pads the text so the JSON body is exactly `size` bytes.
    const bodyOf = (updateId: number, size: number) => {
      const base = JSON.stringify({ update_id: updateId, ...textMessageUpdate({ chatId: updateId, text: "" }) })
      const body = JSON.stringify({ update_id: updateId, ...textMessageUpdate({ chatId: updateId, text: "y".repeat(size - base.length) }) })
      expect(new TextEncoder().encode(body).length).toBe(size)
      return body
    }
    expect((await stack.post(bodyOf(61, 4097))).status).toBe(413)
    expect(count(stack, "telegram_updates")).toBe(0)
    expect((await stack.post(bodyOf(62, 4096))).status).toBe(200)
    expect(count(stack, "telegram_updates")).toBe(1)
    await waitForStatus(stack, 62, "answered")
  })

  it("stores a real text update, and its answer reaches the chat", async () => {
    const update = realText()
    expect((await stack.post(update)).status).toBe(200)
    const chatId = 86815320
    const reply = await stack.telegram.waitFor((t) => t.lastMessage(chatId)?.text === "Echo: just text" && t.lastMessage(chatId), 10_000)
    expect(reply.parse_mode).toBe("HTML")
    expect(stack.query(`select first_name || ' ' || language_code from users where id = ${chatId}`)).toBe("Ирина en")
    await waitForStatus(stack, update.update_id, "answered")
  })

  it("treats a repeated update_id as a no-op: 200, one message, one answer", async () => {
    const update = realText()
    const first = await stack.post(update)
    const again = await Promise.all([stack.post(update), stack.post(update)])
    expect([first.status, ...again.map((r) => r.status)]).toEqual([200, 200, 200])
    await waitForStatus(stack, update.update_id, "answered")
    await stack.post(update)
    // The chat answers its mail in order: once a later message is answered, a second answer to
    // the repeated one would have been sent before it.
    const later = { update_id: update.update_id + 1, ...textMessageUpdate({ chatId: 86815320, text: "later" }) }
    expect((await stack.post(later)).status).toBe(200)
    await waitForStatus(stack, later.update_id, "answered")
    expect(count(stack, "messages")).toBe(2)
    expect(stack.openai.requests.length).toBe(2)
    expect(stack.telegram.callsFor(86815320, "sendMessage").map((c) => c.params["text"])).toEqual(["Echo: just text", "Echo: later"])
  })

  it("acknowledges update kinds it does not handle (service messages, edits, other buttons) with 200 and ignores them", async () => {
    const ignored = [
      "message-group-new_chat_members-graffic-rejubot",
      "my_chat_member-added-to-group-graffic-rejubot",
      "docs-examples/edited_message-core.telegram.org-webhooks",
      "docs-examples/callback_query-core.telegram.org-webhooks"
    ]
    const ids = new Set<number>()
    for (const name of ignored) {
      const update = telegramFixture(name)
      ids.add(update.update_id)
      expect((await stack.post(update)).status, name).toBe(200)
    }
    // Some of Telegram's documentation examples share update_id 10000: each id is stored once.
    expect(count(stack, "telegram_updates")).toBe(ids.size)
    expect(count(stack, "messages")).toBe(0)
    // A text sent after them is answered; by then the worker has had every wake-up there was.
    const marker = { update_id: 880001, ...textMessageUpdate({ chatId: 880001, text: "marker" }) }
    expect((await stack.post(marker)).status).toBe(200)
    await waitForStatus(stack, marker.update_id, "answered")
    expect(stack.telegram.calls.filter((c) => c.method === "sendMessage").map((c) => c.chatId)).toEqual([880001])
  })

  it("acknowledges a well-formed update the schema does not expect (a new chat type) with 200 and stores it as ignored", async () => {
    const update = { update_id: 880002, ...textMessageUpdate({ chatId: 880002, text: "hello" }) }
    const strange = { ...update, message: { ...update.message, chat: { id: 880002, type: "hyperchat" } } }
    expect((await stack.post(strange)).status).toBe(200)
    // The same id again is a no-op, as for any update.
    expect((await stack.post(strange)).status).toBe(200)
    expect(stack.query("select kind from telegram_updates where update_id = 880002")).toBe("message")
    expect(count(stack, "messages")).toBe(0)
    const marker = { update_id: 880003, ...textMessageUpdate({ chatId: 880003, text: "marker" }) }
    expect((await stack.post(marker)).status).toBe(200)
    await waitForStatus(stack, marker.update_id, "answered")
    expect(stack.telegram.calls.filter((c) => c.method === "sendMessage").map((c) => c.chatId)).toEqual([880003])
  })

  it("marks a user who blocked the bot as unreachable, and clears it when they come back", async () => {
    const blocked = telegramFixture("my_chat_member-blocked-private-galihjk-tmpsndbot")
    expect((await stack.post(blocked)).status).toBe(200)
    expect(stack.query("select unreachable_at is not null from users where id = 2063236800")).toBe("t")
    // A text from the user proves they are back, even if Telegram's "unblocked" update was missed.
    expect((await stack.post({ update_id: 732119729, ...textMessageUpdate({ chatId: 2063236800, userId: 2063236800, text: "back" }) })).status).toBe(200)
    expect(stack.query("select unreachable_at is null from users where id = 2063236800")).toBe("t")
    expect(stack.query("select unreachable_at is null from chats where id = 2063236800")).toBe("t")
    await waitForStatus(stack, 732119729, "answered")
    // This real capture has no update_id (its source shows only the my_chat_member part).
    const unblocked = { ...telegramFixture("my_chat_member-unblocked-private-drui9-autogram"), update_id: 732119728 }
    expect((await stack.post(unblocked)).status).toBe(200)
    const userId = (unblocked as unknown as { my_chat_member: { from: { id: number } } }).my_chat_member.from.id
    expect(stack.query(`select unreachable_at is null from users where id = ${userId}`)).toBe("t")
  })

  it("marks a user unreachable when they block the bot, reachable again when they unblock it, and so on", async () => {
    const blocked = telegramFixture("my_chat_member-blocked-private-galihjk-tmpsndbot") as unknown as {
      update_id: number
      my_chat_member: { chat: { id: number }; from: { id: number }; new_chat_member: { status: string } }
    }
    const userId = 5550001
    const membership = (updateId: number, status: "kicked" | "member") => ({
      ...blocked,
      update_id: updateId,
      my_chat_member: {
        ...blocked.my_chat_member,
        chat: { ...blocked.my_chat_member.chat, id: userId },
        from: { ...blocked.my_chat_member.from, id: userId },
        new_chat_member: { ...blocked.my_chat_member.new_chat_member, status }
      }
    })
    const unreachable = () =>
      stack.query(`select (u.unreachable_at is not null) || ':' || (c.unreachable_at is not null) from users u join chats c on c.id = u.id where u.id = ${userId}`)
    expect((await stack.post(membership(5550001, "kicked"))).status).toBe(200)
    expect(unreachable()).toBe("true:true")
    expect((await stack.post(membership(5550002, "member"))).status).toBe(200)
    expect(unreachable()).toBe("false:false")
    expect((await stack.post(membership(5550003, "kicked"))).status).toBe(200)
    expect(unreachable()).toBe("true:true")
    // Telegram delivering the unblock again (a redelivery) changes nothing.
    expect((await stack.post(membership(5550002, "member"))).status).toBe(200)
    expect(unreachable()).toBe("true:true")
  })

  it("answers the real /start command without calling the LLM", async () => {
    const update = telegramFixture("docs-examples/message-private-text-command-core.telegram.org-webhooks")
    expect((await stack.post(update)).status).toBe(200)
    const reply = await stack.telegram.waitFor((t) => t.lastMessage(1111111), 10_000)
    expect(reply.text).toContain("/new starts a new conversation")
    await waitForStatus(stack, update.update_id, "answered")
    const asked = stack.openai.requests.flatMap((r) => (r.body.messages ?? []).map((m) => String(m.content)))
    expect(asked.filter((content) => content.includes("/start"))).toEqual([])
    expect(stack.openai.requests).toEqual([])
  })
})

describe("slow and wrong clients", () => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack()
  })
  afterAll(() => stack.stop())

  /** A raw connection to the program: what it answered, and after how long it closed the socket. */
  const rawRequest = (write: (socket: Socket) => void) =>
    new Promise<{ answer: string; closedAfterMs: number }>((resolve, reject) => {
      const socket = connect(Number(new URL(stack.url).port), "127.0.0.1")
      const start = Date.now()
      let answer = ""
      socket.on("data", (chunk) => (answer += String(chunk)))
      socket.on("error", () => undefined)
      socket.on("close", () => resolve({ answer, closedAfterMs: Date.now() - start }))
      socket.on("connect", () => write(socket))
      setTimeout(() => {
        socket.destroy()
        reject(new Error("the program kept the connection open for 40 s"))
      }, 40_000)
    })

  it("answers 405 with Allow to other methods on its routes, 404 elsewhere", async () => {
    const cases = [["GET", "/telegram/webhook", "POST"], ["PUT", "/lemonsqueezy/webhook", "POST"], ["POST", "/health", "GET, HEAD"], ["DELETE", "/metrics", "GET, HEAD"]] as const
    for (const [method, path, allow] of cases) {
      const res = await fetch(`${stack.url}${path}`, { method })
      expect(res.status, `${method} ${path}`).toBe(405)
      expect(res.headers.get("allow")).toBe(allow)
    }
    expect((await fetch(`${stack.url}/nowhere`)).status).toBe(404)
  })

  it("answers a request without the secret with 401 and closes the connection, without waiting for its body", async () => {
    const { answer, closedAfterMs } = await rawRequest((socket) =>
      socket.write("POST /telegram/webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{")
    )
    expect(answer).toMatch(/^HTTP\/1\.1 401/)
    expect(answer.toLowerCase()).toContain("connection: close")
    expect(closedAfterMs).toBeLessThan(5_000)
  })

  it("cuts a body that trickles in, and headers that never end, after seconds rather than minutes", async () => {
    const secret = `X-Telegram-Bot-Api-Secret-Token: ${webhookSecret}\r\n`
    let trickle: ReturnType<typeof setInterval> | undefined
    const [body, headers] = await Promise.all([
      rawRequest((socket) => {
        socket.write(`POST /telegram/webhook HTTP/1.1\r\nHost: x\r\n${secret}Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{`)
        trickle = setInterval(() => socket.writable && socket.write(" "), 500)
      }),
      rawRequest((socket) => socket.write("POST /telegram/webhook HTTP/1.1\r\nHost: x\r\n"))
    ])
    clearInterval(trickle)
    // The limits are 10 s for a request and 5 s for headers, checked every second.
    for (const cut of [body, headers]) expect(cut.closedAfterMs).toBeLessThan(20_000)
    expect(count(stack, "telegram_updates")).toBe(0)
  })
})

describe("GET /health, /ready, /metrics", () => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack({ env: { METRICS_TOKEN: "metrics-token-1-0123456789abcdef0123" } })
  })
  afterAll(() => stack.stop())

  it("reports the process alive and the dependencies ready", async () => {
    expect(await (await fetch(`${stack.url}/health`)).json()).toEqual({ status: "ok" })
    const ready = await fetch(`${stack.url}/ready`)
    expect(ready.status).toBe(200)
    expect(await ready.json()).toEqual({ status: "ready", database: "ok", queue: "ok" })
  })

  it("reports not ready with 503 while Postgres is away (the report is at most a second old)", async () => {
    stack.postgres!.cut()
    try {
      const deadline = Date.now() + 10_000
      let ready = await fetch(`${stack.url}/ready`)
      while (ready.status !== 503 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100))
        ready = await fetch(`${stack.url}/ready`)
      }
      expect(ready.status).toBe(503)
      expect(await ready.json()).toMatchObject({ status: "not ready", database: "unreachable" })
    } finally {
      stack.postgres!.restore()
    }
  })

  it("exports Prometheus metrics behind the bearer token, without secrets", async () => {
    await stack.post({ update_id: 900, ...textMessageUpdate({ chatId: 901, text: "count me" }) })
    await stack.telegram.waitFor((t) => t.lastMessage(901)?.text === "Echo: count me", 10_000)
    expect((await fetch(`${stack.url}/metrics`)).status).toBe(401)
    const res = await fetch(`${stack.url}/metrics`, { headers: { authorization: "Bearer metrics-token-1-0123456789abcdef0123" } })
    expect(res.status).toBe(200)
    const text = await res.text()
    expect(text).toMatch(/http_requests_total\{[^}]*route="\/telegram\/webhook"[^}]*status="200"[^}]*\} [1-9]/)
    expect(text).toMatch(/telegram_updates_total\{[^}]*outcome="accepted"[^}]*\} [1-9]/)
    expect(text).toMatch(/chat_turn_duration_seconds_count\{[^}]*outcome="answered"[^}]*\} [1-9]/)
    expect(text).toMatch(/llm_time_to_first_token_seconds_count [1-9]/)
    expect(text).toMatch(/llm_tokens_total\{[^}]*direction="out"[^}]*\} [1-9]/)
    expect(text).toMatch(/queue_wait_seconds_count [1-9]/)
    for (const secret of [stack.env.TELEGRAM_BOT_TOKEN!, stack.env.OPENAI_API_KEY!, webhookSecret, "metrics-token-1-0123456789abcdef0123"]) {
      expect(text).not.toContain(secret)
    }
  })
})

describe("/metrics on its own port (METRICS_PORT)", () => {
  it("serves /metrics on 127.0.0.1:METRICS_PORT without a token, and no longer on PORT", async () => {
    const metricsPort = await freePort()
    const stack = await startStack({ env: { METRICS_PORT: String(metricsPort) } })
    try {
      const metrics = await fetch(`http://127.0.0.1:${metricsPort}/metrics`)
      expect(metrics.status).toBe(200)
      expect(await metrics.text()).toMatch(/^# (HELP|TYPE) /m)
      expect((await fetch(`${stack.url}/metrics`)).status).toBe(404)
      // Through a proxy on this machine, the request came from outside: no token, no metrics.
      expect((await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { headers: { "x-forwarded-for": "203.0.113.9" } })).status).toBe(401)
      expect((await fetch(`http://127.0.0.1:${metricsPort}/ready`)).status).toBe(404)
      expect((await fetch(`${stack.url}/ready`)).status).toBe(200)
    } finally {
      await stack.stop()
    }
  })

  it("stops at start when METRICS_PORT is in use, naming it", async () => {
    const taken = createServer()
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve))
    const port = (taken.address() as AddressInfo).port
    try {
      const error = await startStack({ env: { METRICS_PORT: String(port) } }).then(
        async (stack) => { await stack.stop(); return undefined },
        (error: unknown) => error as Error
      )
      expect(error?.message).toBe(`METRICS_PORT ${port} is in use by another program (EADDRINUSE): stop it, or set METRICS_PORT to a free port.`)
    } finally {
      taken.close()
    }
  })
})

describe("webhook mode (PUBLIC_URL set)", () => {
  it("registers PUBLIC_URL/telegram/webhook with the secret at start and does not poll", async () => {
    const stack = await startStack({ program: "api", env: { PUBLIC_URL: "https://bot.example.com/" } })
    try {
      const webhook = await stack.telegram.waitFor((t) => t.webhook, 10_000)
      expect(webhook.url).toBe("https://bot.example.com/telegram/webhook")
      expect(webhook.secret_token).toBe(webhookSecret)
      // Stop presses come as callback queries (groups) and stopped_message_generation (drafts).
      expect(webhook.allowed_updates).toEqual(["message", "my_chat_member", "callback_query", "stopped_message_generation"])
      expect(stack.telegram.calls.filter((c) => c.method === "getUpdates")).toEqual([])
    } finally {
      await stack.stop()
    }
  })

  it("long-polls when PUBLIC_URL is unset, feeding the same inbox", async () => {
    const stack = await startStack()
    try {
      stack.telegram.pushUpdate({ update_id: 777, ...textMessageUpdate({ chatId: 777, text: "via polling" }) })
      await stack.telegram.waitFor((t) => t.lastMessage(777)?.text === "Echo: via polling" || undefined, 10_000)
      await waitForStatus(stack, 777, "answered")
      // Its turn joined the poll's trace.
      expect(stack.query("select trace_context from messages where update_id = 777")).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/)
      // A group message is classified by whom it addresses there too (the bot's getMe).
      stack.telegram.pushUpdate({ update_id: 778, ...textMessageUpdate({ chatId: -778, userId: 778, groupTitle: "G", text: "chatter" }) })
      stack.telegram.pushUpdate({ update_id: 779, ...textMessageUpdate({ chatId: -778, userId: 778, groupTitle: "G", ...mentioningBot("via polling") }) })
      await waitForStatus(stack, 779, "answered")
      expect(stack.telegram.messages(-778).map((m) => m.text)).toEqual(["Echo: via polling"])
    } finally {
      await stack.stop()
    }
  })
})
