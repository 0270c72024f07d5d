/**
 * The send budget on real Redis, as two worker processes share it: two budgets built apart (each
 * with its own connection) on one Redis database, in real time.
 */
import { Redis as IORedis } from "ioredis"
import { ConfigProvider, Context, Effect, Fiber, Layer, Redacted } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as SendBudgetRedis from "../../../src/layers/telegram/SendBudgetRedis.ts"
import { AppConfig } from "../../../src/services/platform/AppConfig.ts"
import { Redis } from "../../../src/services/platform/Redis.ts"
import { SendBudget, SendPriority } from "../../../src/services/telegram/SendBudget.ts"
import { leaseRedisDb } from "../../support/Stack.ts"

let lease: Awaited<ReturnType<typeof leaseRedisDb>>
let url: string
beforeAll(async () => {
  lease = await leaseRedisDb()
  url = `redis://127.0.0.1:6379/${lease.db}`
})
afterAll(() => lease.release())

/** One process's budget (and its Redis connection) on the leased Redis database, at 20 sends a second for the bot. */
const processBudget = () =>
  SendBudgetRedis.layer.pipe(
    Layer.provideMerge(Redis.layer(Redacted.make(url))),
    Layer.provide(AppConfig.layer),
    Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({
      env: { TELEGRAM_BOT_TOKEN: "123:secret-token", OPENAI_API_KEY: "sk-secret", TELEGRAM_SENDS_PER_SECOND: "20" }
    })))
  )

describe("SendBudgetRedis", () => {
  /**
   * The first process has 24 sends of `early` to make; once it is sending, the second one gets 16
   * finals for chats it never served. Returns how many of the first process's sends went among
   * the finals (from the first final to the last).
   */
  const amongFinals = (early: "preview" | "final to served chats") =>
    Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const first = Context.get(yield* Layer.build(processBudget()), SendBudget)
      const second = Context.get(yield* Layer.build(processBudget()), SendBudget)
      const chats = Array.from({ length: 24 }, (_, i) => 9_200 + i)
      // Typing counts for no chat's pace: the chats are served, and rested still.
      if (early !== "preview") yield* Effect.forEach(chats, (chatId) => first.awaitTurn("sendChatAction", chatId), { concurrency: "unbounded" })
      const grants: Array<"early" | "final"> = []
      const earlySends = yield* Effect.forkChild(Effect.forEach(chats, (chatId) =>
        first.awaitTurn(early === "preview" ? "editMessageText" : "sendMessage", chatId).pipe(
          Effect.provideService(SendPriority, early === "preview" ? "update" : "final"),
          Effect.andThen(Effect.sync(() => grants.push("early")))
        ), { concurrency: "unbounded" }))
      while (grants.length === 0) yield* Effect.sleep("5 millis")
      yield* Effect.forEach(Array.from({ length: 16 }, (_, i) => 9_300 + i), (chatId) =>
        second.awaitTurn("sendMessage", chatId).pipe(Effect.andThen(Effect.sync(() => grants.push("final")))), {
        concurrency: "unbounded"
      })
      yield* Fiber.join(earlySends)
      return grants.slice(grants.indexOf("final"), grants.lastIndexOf("final")).filter((g) => g === "early").length
    })))

  // Sharing the window evenly, the processes would take turns of 4 sends (12 of the first one's
  // among the finals); only those the first process had reserved when the finals came (4, 5 if
  // it was fetching more then) may go among them.
  it("priorities hold across processes: one process's previews wait while another's final answers go", async () => {
    expect(await amongFinals("preview")).toBeLessThanOrEqual(5)
  })

  it("a final answer to a chat not served yet goes before another process's finals to chats served already", async () => {
    expect(await amongFinals("final to served chats")).toBeLessThanOrEqual(5)
  })

  it("two processes share one window: no second holds more than 20 of their sends together", () =>
    Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const first = Context.get(yield* Layer.build(processBudget()), SendBudget)
      const second = Context.get(yield* Layer.build(processBudget()), SendBudget)
      // The earlier tests' sends are out of the window.
      const admin = new IORedis(url)
      yield* Effect.promise(() => admin.del("bot:send-window", "bot:send-demand"))
      yield* Effect.promise(() => admin.quit())
      const grants: Array<number> = []
      // 30 final answers each, to chats of their own: 60 sends, three seconds of the budget.
      yield* Effect.forEach(Array.from({ length: 60 }, (_, i) => 9_500 + i), (chatId) =>
        (chatId % 2 === 0 ? first : second).awaitTurn("sendMessage", chatId).pipe(
          Effect.andThen(Effect.sync(() => grants.push(performance.now())))
        ), { concurrency: "unbounded" })
      grants.sort((a, b) => a - b)
      const busiest = Math.max(...grants.map((at) => grants.filter((other) => other >= at && other < at + 1000).length))
      // Granted at most 20 in any second of Redis's clock. Read here, after each grant reaches
      // its fiber, a busy event loop may bunch a few: 2 of slack (two budgets apart: about 40).
      expect(busiest).toBeGreaterThanOrEqual(20)
      expect(busiest).toBeLessThanOrEqual(22)
      // The window, not an even pace: the first 20 within about half a second, not a whole one.
      expect(grants[19]! - grants[0]!).toBeLessThan(750)
    }))))

  it("a process stalled past its reserved sends frees their places in Redis: the window holds only sends made", () =>
    Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const budget = Context.get(yield* Layer.build(processBudget()), SendBudget)
      const admin = new IORedis(url)
      yield* Effect.promise(() => admin.del("bot:send-window", "bot:send-demand"))
      let granted = 0
      const sends = yield* Effect.forkChild(Effect.forEach(Array.from({ length: 12 }, (_, i) => 9_600 + i), (chatId) =>
        budget.awaitTurn("sendMessage", chatId).pipe(Effect.andThen(Effect.sync(() => granted++))), { concurrency: "unbounded" }))
      while (granted === 0) yield* Effect.sleep("1 millis")
      // The event loop blocked for 300 ms (a busy worker): the sends reserved meanwhile are too
      // late to make, and given up.
      const until = Date.now() + 300
      while (Date.now() < until) { /* busy */ }
      yield* Fiber.join(sends)
      yield* Effect.sleep("100 millis")
      // The window's value: the pause's end, then the places of the latest sends.
      const places = (yield* Effect.promise(() => admin.get("bot:send-window")))!.split(" ").length - 1
      yield* Effect.promise(() => admin.quit())
      expect(granted).toBe(12)
      expect(places).toBe(12)
    }))))

  it("the window lost in Redis (a restart) while this process's own record is full: its next send keeps to that record, asking Redis once or twice", () =>
    Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const context = yield* Layer.build(processBudget())
      const budget = Context.get(context, SendBudget)
      const admin = new IORedis(url)
      yield* Effect.promise(() => admin.del("bot:send-window", "bot:send-demand"))
      const grants: Array<number> = []
      yield* Effect.forEach(Array.from({ length: 20 }, (_, i) => 9_700 + i), (chatId) =>
        budget.awaitTurn("sendMessage", chatId).pipe(Effect.andThen(Effect.sync(() => grants.push(Date.now())))), {
        concurrency: "unbounded"
      })
      yield* Effect.promise(() => admin.del("bot:send-window"))
      yield* Effect.promise(() => admin.quit())
      // The script's calls from here on (the layer calls the client's command as it goes).
      const client = Context.get(context, Redis).client as IORedis & { botSendWindow: (...args: Array<unknown>) => Promise<unknown> }
      const script = client.botSendWindow.bind(client)
      let calls = 0
      client.botSendWindow = (...args) => (calls++, script(...args))
      yield* budget.awaitTurn("sendMessage", 9_800)
      // 20 sends in the second since the first: the 21st waits for it to leave (less what a busy
      // machine delays the first one's timestamp here).
      expect(Date.now() - Math.min(...grants)).toBeGreaterThanOrEqual(900)
      expect(calls).toBeLessThanOrEqual(3)
    }))))

  it("with the window free again, a less urgent send goes at once though another process just sent a final", () =>
    Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const first = Context.get(yield* Layer.build(processBudget()), SendBudget)
      const second = Context.get(yield* Layer.build(processBudget()), SendBudget)
      yield* second.awaitTurn("sendMessage", 9_400)
      yield* Effect.sleep("200 millis")
      // The final's ask holds less urgent sends back for 16 sends (800 ms at 20 a second), but
      // only while sends compete: the window has had room for 150 ms.
      const start = Date.now()
      yield* first.awaitTurn("editMessageText", 9_401).pipe(Effect.provideService(SendPriority, "update"))
      expect(Date.now() - start).toBeLessThan(400)
    }))))

  it("a chat's pace carries over to the next process writing to it; other chats are not held back", () =>
    Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const first = Context.get(yield* Layer.build(processBudget()), SendBudget)
      const second = Context.get(yield* Layer.build(processBudget()), SendBudget)
      const chatId = 9_101
      // The first process's turn in the private chat uses its burst of 3 (one a second after).
      const start = Date.now()
      for (let i = 0; i < 3; i++) yield* first.awaitTurn("sendMessage", chatId)
      const admin = new IORedis(url)
      const left = yield* Effect.promise(() => admin.pttl(`bot:chat-pace:${chatId}`))
      yield* Effect.promise(() => admin.quit())
      expect(left).toBeGreaterThan(0)
      expect(left).toBeLessThanOrEqual(3_000)
      // The chat's next turn runs in the second process, whose budget is sending meanwhile.
      const busy = yield* Effect.forkChild(Effect.forEach([9_103, 9_104, 9_105], (other) => second.awaitTurn("sendMessage", other)))
      yield* second.catchUp(chatId)
      const order: Array<number> = []
      const [, next] = yield* Effect.all([
        second.awaitTurn("sendMessage", 9_102).pipe(Effect.andThen(Effect.sync(() => order.push(9_102)))),
        second.awaitTurn("sendMessage", chatId).pipe(Effect.andThen(Effect.sync(() => (order.push(chatId), Date.now()))))
      ], { concurrency: "unbounded" })
      // Three sends at about `start`: the fourth a second later, not at once.
      expect(next - start).toBeGreaterThanOrEqual(950)
      expect(order).toEqual([9_102, chatId])
      yield* Fiber.join(busy)
    }))))
})
