import { Clock, Context, Deferred, Duration, Effect, Layer, Metric, References } from "effect"
import { AppConfig } from "../platform/AppConfig.ts"
import { sendWait } from "../platform/Metrics.ts"
import { floodWaitError, maxWaitSeconds, type TelegramApiError } from "./Telegram.ts"

/**
 * Who a send is for, most urgent first (issue 10): a final answer; the first text of a reply (a
 * chat that has seen at most typing); then typing, further drafts and edits with what is left.
 * Within "update" the round robin serves chats never served first: a chat that has seen nothing
 * gets its typing before another chat's next draft. Among chats that have seen nothing, a first
 * text goes to the one whose text came last: its answer began last, so its final text is the
 * furthest off, while the earliest one's final text comes soon and shows the whole answer in one
 * send (a draft there would cost two). A chat passed over waits no longer than its answer (at
 * most TURN_TIMEOUT_SECONDS): its final text then goes before any first text. Issue 10, 300 chats
 * at once: finals to chats that had just seen a draft took 21-23 of the sends before the 150th
 * chat's first text, 3-8 since.
 */
export type SendPriority = "final" | "first" | "update"
const priorities: ReadonlyArray<SendPriority> = ["final", "first", "update"]

/** The priority the Telegram layer pays a call with; "final" unless the caller says otherwise. */
export const SendPriority = Context.Reference<SendPriority>("bot/SendPriority", { defaultValue: () => "final" })

/** A turn taken ahead of the call it pays for (`SendBudget.prepaid`): the chat's next counted call is free. */
interface Pass {
  readonly chatId: number
  used: boolean
}
const SendPass = Context.Reference<Pass | undefined>("bot/SendPass", { defaultValue: () => undefined })

/** The Bot API calls that write to a chat: each one is paid from the budget. */
const countedMethods = new Set(["sendMessage", "editMessageText", "sendMessageDraft", "sendChatAction", "deleteMessage"])
/** A chat action is no message: it counts for the bot, not against the chat's own limit. */
const chatPaced = (method: string) => method !== "sendChatAction"

/**
 * Telegram's per-chat limits (https://core.telegram.org/bots/faq#broadcasting-to-users): about
 * one message a second in a chat, short bursts allowed; at most 20 a minute in a group. Paced as
 * a GCRA: one send per `intervalMs`, up to `burst` at once after a rest. A group's interval keeps
 * any minute at 20 even after a burst of 3: (60 + 2 × 3.6) / 3.6 < 19.
 */
const privateChat = { intervalMs: 1_000, burst: 3 }
const groupChat = { intervalMs: 3_600, burst: 3 }
const chatRule = (chatId: number) => (chatId > 0 ? privateChat : groupChat)

/**
 * The bot-wide limit (TELEGRAM_SENDS_PER_SECOND, Telegram's "about 30 messages per second",
 * https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this) as a sliding
 * window: at most `sends` in any `millis` (28 in any second by default; a rate below 1 or with a
 * fraction: 1 in 1000 / rate ms, or its whole part over a window shortened to match). Within it,
 * sends keep `intervalMs` (1000 / rate) apart when they show a chat nothing new (typing, further
 * drafts: the even pace), half of that when they do (a final answer or a first text): those may
 * use what the second before left unused at once, instead of spreading it over the next second.
 * Issue 10: with an even pace, the 150th of 300 chats could see text no sooner than 149 sends
 * after the first (6.0-6.1 s at 28 a second), and sends the busy worker was late for were lost.
 */
export interface BotWindow {
  /** The most sends in any window. */
  readonly sends: number
  /** The window's length (ms): 1000 when the rate is whole. */
  readonly millis: number
  /** 1000 / rate (ms): the gap between sends that show nothing new. */
  readonly intervalMs: number
}

/** The window of a rate (sends a second, > 0). */
const botWindow = (sendsPerSecond: number): BotWindow => {
  const sends = Math.max(1, Math.floor(sendsPerSecond))
  return { sends, millis: (1000 * sends) / sendsPerSecond, intervalMs: 1000 / sendsPerSecond }
}

/** `demandRank` of typing, further drafts and edits: sends that show a chat nothing new. */
const updateRank = 3

/** The least gap (ms) before a send of `rank` (`demandRank`): a full send for updates, half for texts that show something new. */
export const gapMs = (window: BotWindow, rank: number) => (rank >= updateRank ? window.intervalMs : window.intervalMs / 2)

/**
 * When the next send may go (ms): at `now` at the earliest, `gap` after the last one, and once
 * the oldest of the last `window.sends` is `window.millis` old. `recent` holds the latest send
 * times, ascending.
 */
const nextSendAt = (window: BotWindow, recent: ReadonlyArray<number>, now: number, gap: number) =>
  Math.max(
    now,
    recent.length === 0 ? now : recent[recent.length - 1]! + gap,
    recent.length < window.sends ? now : recent[recent.length - window.sends]! + window.millis
  )

/**
 * The bot-wide window every process shares: in process (`SendBudget.layer`) or in Redis
 * (`layers/telegram/SendBudgetRedis.ts`). Each chat's pace is kept by the process writing to it,
 * and shared here for the next process to write to the chat.
 */
export interface BotPace {
  readonly window: BotWindow
  /**
   * Frees `unused` (places of earlier reservations given up: `Reservation.places`), then reserves
   * the next `count` sends for sends of `rank` (`demandRank`), as `nextSendAt` places them, none
   * sooner than `notBeforeMs` from now (the process's own record of its sends may know of some
   * the shared window lost: Redis restarted, or away meanwhile). Reserved, they are this
   * process's to use: other processes' sends come before or after.
   */
  readonly reserve: (count: number, rank: number, unused: ReadonlyArray<number>, notBeforeMs: number) => Effect.Effect<Reservation>
  /** No send for anyone for `millis` (a 429's retry_after). */
  readonly pause: (millis: number) => Effect.Effect<void>
  /**
   * Until when (ms from now, 0: rested or unknown) the chat's pace runs, as the last process to
   * write to it left it; absent where one process is all there is.
   */
  readonly chatPace?: (chatId: number) => Effect.Effect<number>
  /** The chat's pace runs for `millis` more (ms from now), for whichever process writes to it next. */
  readonly keepChatPace?: (chatId: number, millis: number) => Effect.Effect<void>
}

/**
 * What `BotPace.reserve` got: sends at `inMs` from now (ascending, 0: now), each at the place of
 * the same index in the window (the pace's own record of it, to free it by); or none, `heldMs`
 * the time until the next send may go, when it may not go now and another process asked for
 * sends of a more urgent rank within the last `demandHoldSends` sends (priorities hold across
 * processes when sends compete; with room in the window, anyone's send goes).
 */
export type Reservation =
  | { readonly inMs: ReadonlyArray<number>; readonly places: ReadonlyArray<number> }
  | { readonly heldMs: number }

/** One process's window: its budget's own record of each chat's pace is the whole truth. */
export const memoryPace = (sendsPerSecond: number): Effect.Effect<BotPace> =>
  Effect.sync(() => {
    const window = botWindow(sendsPerSecond)
    let recent: Array<number> = []
    let pausedUntil = Number.NEGATIVE_INFINITY
    return {
      window,
      // One process: its own dispatcher orders the priorities.
      reserve: (count, rank, unused, notBeforeMs) =>
        Clock.currentTimeMillis.pipe(Effect.map((now) => {
          // Kept by time, not count: a place freed must not let in a send the window still holds.
          recent = recent.filter((at) => at > now - window.millis && !unused.includes(at))
          const places: Array<number> = []
          for (let i = 0; i < count; i++) {
            const at = nextSendAt(window, recent, Math.max(now + notBeforeMs, pausedUntil), gapMs(window, rank))
            recent.push(at)
            places.push(at)
          }
          return { inMs: places.map((at) => at - now), places }
        })),
      pause: (millis) => Clock.currentTimeMillis.pipe(Effect.map((now) => void (pausedUntil = Math.max(pausedUntil, now + millis))))
    }
  })

/**
 * Sends reserved at once, at most: one call to a shared window (a Redis round trip) buys several,
 * fetched while the current one waits, so a process whose event loop is slow under load still
 * keeps the budget full (issue 10: with one round trip per send, a busy worker used 60 %).
 */
const reserveAhead = 4

/**
 * How long (in sends at the bot's rate) a process's call for sends of a rank holds less urgent
 * ones of other processes back: while it has such sends waiting it calls again at least every
 * `reserveAhead` of its own sends, which processes sharing the window spread over as many times
 * more (enough for four). Issue 10: one worker sent drafts while another one's finals waited.
 */
export const demandHoldSends = 4 * reserveAhead

/**
 * How urgent a send is across processes, 0 the most: a final answer to a chat this process has
 * not served yet (it is also the chat's first sign: what the round robin serves first within a
 * process), any other final answer, a first text, the rest.
 */
const demandRank = (priority: SendPriority, served: boolean) =>
  priority === "final" ? (served ? 1 : 0) : priority === "first" ? 2 : updateRank

/** The longest typing waits for room in the window while replies wait for their first sign (ms). */
const typingHoldMillis = 1_000

/** The longest a send waits for its chat's pace to be read (ms): the read itself gives up after 1 s. */
const catchUpWaitMillis = 2_000

interface Waiter {
  readonly chatId: number | undefined
  /** The call the turn is for (its limits); undefined: not known yet, a message's limits apply. */
  readonly method: string | undefined
  /** A prepaid turn: its call, made after, pays the chat's charge. */
  readonly prepaid: boolean
  readonly priority: SendPriority
  readonly seq: number
  readonly since: number
  readonly granted: Deferred.Deferred<void>
}

/** Past this many chats remembered (their pace, last turn, flood wait), the rested ones are dropped. */
const pruneAbove = 10_000

/**
 * The bot's send budget (issue 10): every Bot API call that writes to a chat waits for its turn.
 * Turns go out within the bot-wide window (TELEGRAM_SENDS_PER_SECOND, shared by every process
 * through BotPace), within each chat's limits, highest priority first and, within a priority, to the
 * chat served least recently (round robin: a chat never served comes first). A 429 pauses its
 * chat for its retry_after, and the whole bot unless the chat is a group. Time comes from the Clock.
 */
export class SendBudget extends Context.Service<SendBudget, {
  /**
   * Waits until `method` may be called for `chatId` (undefined: not chat-bound), at the
   * SendPriority in context. Fails at once with TelegramApiError 429 when the chat (or the bot)
   * must wait more than 30 s. Calls that do not write to a chat only sit out the chat's own
   * flood wait (reads, callback answers and getUpdates go on during the bot's pause).
   */
  readonly awaitTurn: (method: string, chatId: number | undefined) => Effect.Effect<void, TelegramApiError>
  /**
   * Takes the chat's next turn at the SendPriority in context, then runs `effect`, whose first counted call to the
   * chat uses it: what to send can be chosen once the turn came (the latest text, not the text
   * of when the wait began), and the call itself can be made uninterruptible without waiting
   * there. `method`, when the call is known, sets which limits the turn waits for (a chat action:
   * the bot's only). Inside a turn taken for the chat and not used yet, takes none.
   */
  readonly prepaid: <A, E, R>(chatId: number, effect: Effect.Effect<A, E, R>, method?: string) => Effect.Effect<A, E | TelegramApiError, R>
  /**
   * A reply to the chat begins here: its sends also keep to what other processes sent to the chat
   * (its pace as the last of them left it, written as each of their sends was granted). Returns
   * at once; the chat's next send waits for the pace to be read (at most 1 s; Redis away: this
   * process's own record). Turns of a chat run one at a time (the chat lock), so the chat's
   * previous turn, wherever it ran, has sent what it sends.
   */
  readonly catchUp: (chatId: number) => Effect.Effect<void>
  /**
   * A 429: nothing for the chat (when given) before `seconds` pass; nothing for anyone either,
   * unless the chat is a group (its own 20-a-minute limit: the group's pace, which the next
   * process writing to it reads, moves past the wait).
   */
  readonly rememberFloodWait: (chatId: number | undefined, seconds: number) => Effect.Effect<void>
  /** Seconds left of the chat's flood wait, 0 when it may be written to now. */
  readonly floodWaitSeconds: (chatId: number) => Effect.Effect<number>
}>()("bot/SendBudget") {
  /**
   * The budget on `pace`, for as long as the scope lasts; `chatLimits: false` lets every chat
   * take any number of turns (tests).
   */
  static readonly make = (pace: BotPace, { chatLimits = true }: { readonly chatLimits?: boolean } = {}) =>
    Effect.gen(function*() {
      // The chat paces being shared or read end with the budget, before the connection they use.
      const scope = yield* Effect.scope
      const waiters = new Set<Waiter>()
      // Per chat: when its pace lets the next send go (GCRA's theoretical arrival time), when it
      // was last served (the round robin), until when it is flood-waiting.
      const chatNextAt = new Map<number, number>()
      const lastServed = new Map<number, number>()
      const floodUntil = new Map<number, number>()
      let botPausedUntil = 0
      let seq = 0
      let arrived = yield* Deferred.make<void>()
      let dispatching = false

      /** When the waiter's chat lets it go (ms): "update" sends only into a rested chat. */
      const readyAt = (waiter: Waiter) => {
        if (waiter.chatId === undefined) return 0
        const flood = floodUntil.get(waiter.chatId) ?? 0
        if (!chatLimits || (waiter.method !== undefined && !chatPaced(waiter.method))) return flood
        const { burst, intervalMs } = chatRule(waiter.chatId)
        const tolerance = waiter.priority === "update" ? 0 : (burst - 1) * intervalMs
        return Math.max((chatNextAt.get(waiter.chatId) ?? 0) - tolerance, flood)
      }

      /** The chat's pace runs until `nextAt`, here and for the next process to write to the chat. */
      const movePace = (chatId: number, nextAt: number, now: number) =>
        Effect.suspend(() => {
          if (chatNextAt.size > pruneAbove) prune(now)
          chatNextAt.set(chatId, nextAt)
          return pace.keepChatPace === undefined ? Effect.void : Effect.asVoid(Effect.forkIn(pace.keepChatPace(chatId, nextAt - now), scope))
        })

      /** The chat's pace moves one send on. */
      const charge = (chatId: number, now: number) =>
        Effect.suspend(() => movePace(chatId, Math.max(chatNextAt.get(chatId) ?? 0, now) + chatRule(chatId).intervalMs, now))

      // Chats whose pace is being read (catchUp): their sends wait for it.
      const catchingUp = new Map<number, Deferred.Deferred<void>>()

      // This process's latest grants (ms, ascending, the window's count at most), at the times
      // they were made: the shared window records places, and a send granted late (a busy event
      // loop) must move the sends a window after it.
      const granted: Array<number> = []

      /** How urgent the waiter's send is across processes (`demandRank`). */
      const rankOf = (waiter: Waiter) => demandRank(waiter.priority, waiter.chatId !== undefined && lastServed.has(waiter.chatId))

      /**
       * When typing may go (ms; +Infinity: not before its hold ends): once the window has room
       * for every reply waiting for its first sign (typing or a first text). A send takes its
       * place for a whole window: typing for a burst of replies would take the places their
       * first texts need a moment later, and a text shows more (issue 10).
       */
      const typingRoomAt = (now: number) => {
        let signs = 0
        for (const waiter of waiters) if (waiter.priority === "first" || waiter.method === "sendChatAction") signs++
        const inWindow = granted.filter((at) => at > now - pace.window.millis)
        // Sends that must leave the window first.
        const leaving = inWindow.length - (pace.window.sends - signs - 1)
        if (leaving <= 0) return now
        return leaving > inWindow.length ? Number.POSITIVE_INFINITY : inWindow[leaving - 1]! + pace.window.millis
      }

      /** The waiter to serve now and how many are ready now, or when the first one will be ready. */
      const pick = (now: number): { readonly next?: Waiter; readonly ready: number; readonly retryAt: number } => {
        let retryAt = Number.POSITIVE_INFINITY
        let ready = 0
        let next: Waiter | undefined
        let typingAt: number | undefined
        for (const priority of priorities) {
          let best: Waiter | undefined
          let bestServed = 0
          for (const waiter of waiters) {
            if (waiter.priority !== priority) continue
            // Typing waits for room, at most `typingHoldMillis`.
            if (waiter.method === "sendChatAction" && now - waiter.since < typingHoldMillis && (typingAt ??= typingRoomAt(now)) > now) {
              retryAt = Math.min(retryAt, waiter.since + typingHoldMillis, typingAt)
              continue
            }
            const at = readyAt(waiter)
            if (at > now) {
              retryAt = Math.min(retryAt, at)
              continue
            }
            ready++
            if (next !== undefined) continue
            const served = waiter.chatId === undefined ? Number.NEGATIVE_INFINITY : lastServed.get(waiter.chatId) ?? Number.NEGATIVE_INFINITY
            // Ties: the earliest waiter, but for a first text the latest (see SendPriority).
            const wins = best === undefined || served < bestServed ||
              (served === bestServed && (priority === "first" ? waiter.seq > best.seq : waiter.seq < best.seq))
            if (wins) {
              best = waiter
              bestServed = served
            }
          }
          next ??= best
        }
        return next !== undefined ? { next, ready, retryAt: now } : { ready, retryAt }
      }

      const grant = (waiter: Waiter, now: number) =>
        Effect.gen(function*() {
          waiters.delete(waiter)
          if (waiter.chatId !== undefined) {
            if (!waiter.prepaid && waiter.method !== undefined && chatPaced(waiter.method)) yield* charge(waiter.chatId, now)
            if (lastServed.size > pruneAbove) prune(now)
            lastServed.set(waiter.chatId, now)
          }
          yield* Metric.update(Metric.withAttributes(sendWait, { priority: waiter.priority }), (now - waiter.since) / 1000)
          yield* Deferred.succeed(waiter.granted, undefined)
        })

      /** Forgets rested chats: their pace, flood wait and place in the round robin no longer matter. */
      const prune = (now: number) => {
        for (const [chatId, at] of chatNextAt) if (at <= now) chatNextAt.delete(chatId)
        for (const [chatId, until] of floodUntil) if (until <= now) floodUntil.delete(chatId)
        for (const chatId of lastServed.keys()) if (!chatNextAt.has(chatId)) lastServed.delete(chatId)
      }

      /** Sleeps `millis`, or less when a waiter arrives (it may come first). */
      const sleepOrArrival = (millis: number) =>
        Effect.raceFirst(Effect.sleep(Duration.millis(Math.max(1, millis))), Deferred.await(arrived))

      // Sends reserved from the window and not used yet (ms, ascending, with their places); a
      // pause gives them up.
      let reserved: Array<{ readonly at: number; readonly place: number }> = []
      // Places of reserved sends given up, freed with the next reservation (no call of their own).
      let unused: Array<number> = []
      /**
       * Reserves sends for the `ready` waiters, `next` the most urgent: 0, or the ms the window is
       * full for while another process's more urgent sends wait (none reserved).
       */
      const reserveMore = (ready: number, next: Waiter) =>
        Effect.gen(function*() {
          const count = Math.min(reserveAhead, Math.max(1, ready - reserved.length))
          const rank = rankOf(next)
          const asked = yield* Clock.currentTimeMillis
          const notBefore = nextSendAt(pace.window, granted, asked, gapMs(pace.window, rank)) - asked
          const got = yield* pace.reserve(count, rank, unused, notBefore)
          unused = []
          if ("heldMs" in got) return got.heldMs
          // Times from the answer's arrival: a slow answer makes its sends later, never sooner.
          const now = yield* Clock.currentTimeMillis
          got.inMs.forEach((inMs, i) => reserved.push({ at: now + inMs, place: got.places[i]! }))
          return 0
        })

      // One dispatcher hands out the turns, one at a time, while any call waits. It runs on the
      // fiber context (the Clock) of the call that started it, and ends when none is left.
      // Whether to go on, and the flag cleared, in one step: a call arriving in between starts a new one.
      const goOn = Effect.sync(() => waiters.size > 0 || (dispatching = false))
      const dispatch = Effect.gen(function*() {
        while (yield* goOn) {
          if (yield* Deferred.isDone(arrived)) arrived = yield* Deferred.make<void>()
          const now = yield* Clock.currentTimeMillis
          if (botPausedUntil > now) {
            for (const { place } of reserved) unused.push(place)
            reserved = []
            yield* Effect.sleep(Duration.millis(botPausedUntil - now))
            continue
          }
          const { next, ready, retryAt } = pick(now)
          if (next === undefined) {
            yield* sleepOrArrival(retryAt - now)
            continue
          }
          if (reserved.length === 0) {
            // Another process's more urgent sends fill the window: asked again once it frees, not
            // at each arrival (each would be a Redis round trip).
            const held = yield* reserveMore(ready, next)
            if (held > 0) {
              yield* Effect.sleep(Duration.millis(Math.max(held, pace.window.intervalMs)))
              continue
            }
          } else if (reserved.length === 1 && ready > 1) {
            // The last reserved send: the next ones are fetched while it is waited for.
            yield* reserveMore(ready, next)
          }
          // Grants keep to the window here too, at their actual times: a send granted late must
          // not crowd the next ones, and one later than a whole send is given up, not caught up
          // with, its place freed (a busy worker stalled 270-370 ms at a burst's start: the
          // places of the sends it missed would have come back, unused, every second).
          const { at: slot, place } = reserved[0]!
          const at = nextSendAt(pace.window, granted, slot, gapMs(pace.window, rankOf(next)))
          const current = yield* Clock.currentTimeMillis
          if (current - slot > pace.window.intervalMs) {
            reserved.shift()
            unused.push(place)
            continue
          }
          if (at > current) {
            yield* sleepOrArrival(at - current)
            continue
          }
          // The waiter left meanwhile: the send goes to whoever comes first now.
          if (!waiters.has(next)) continue
          reserved.shift()
          granted.push(current)
          if (granted.length > pace.window.sends) granted.shift()
          yield* grant(next, current)
        }
      }).pipe(Effect.onError(() => Effect.sync(() => void (dispatching = false))))

      /** Fails with TelegramApiError 429 when `millis` is longer than a call sits out (30 s). */
      const refuseLongWait = (method: string, millis: number) => {
        const seconds = Math.ceil(millis / 1000)
        return seconds > maxWaitSeconds ? floodWaitError(method, seconds) : Effect.void
      }

      /** The chat's turn not used yet, when the caller runs inside one (`prepaid`). */
      const unusedPass = (chatId: number | undefined) =>
        Effect.gen(function*() {
          const pass = yield* SendPass
          return pass !== undefined && !pass.used && pass.chatId === chatId ? pass : undefined
        })

      /** What is left of the chat's flood wait and, for writes, the bot's pause (ms). */
      const pausedMillis = (chatId: number | undefined, writes = true) =>
        Clock.currentTimeMillis.pipe(Effect.map((now) =>
          Math.max(0, writes ? botPausedUntil - now : 0, chatId === undefined ? 0 : (floodUntil.get(chatId) ?? now) - now)
        ))

      const queue = (method: string | undefined, chatId: number | undefined, priority: SendPriority, prepaid: boolean) =>
        Effect.gen(function*() {
          // The read is bounded (Redis away: 1 s); one that never ran (the budget closing) is not waited for long.
          const reading = chatId === undefined ? undefined : catchingUp.get(chatId)
          if (reading !== undefined) yield* Effect.timeoutOption(Deferred.await(reading), Duration.millis(catchUpWaitMillis))
          yield* refuseLongWait(method ?? "sendMessage", yield* pausedMillis(chatId))
          const waiter: Waiter = {
            chatId,
            method,
            prepaid,
            priority,
            seq: seq++,
            since: yield* Clock.currentTimeMillis,
            granted: yield* Deferred.make<void>()
          }
          // Queued and the dispatcher started as one step, so an interruption leaves neither half-done.
          yield* Effect.uninterruptible(Effect.gen(function*() {
            waiters.add(waiter)
            yield* Deferred.succeed(arrived, undefined)
            if (!dispatching) {
              dispatching = true
              // Its own trace and no log annotations: it serves every chat, not the first caller's.
              yield* Effect.forkDetach(dispatch.pipe(
                Effect.withSpan("SendBudget.dispatch", { root: true }),
                Effect.provideService(References.CurrentLogAnnotations, {})
              ))
            }
          }))
          yield* Deferred.await(waiter.granted).pipe(Effect.onInterrupt(() => Effect.sync(() => waiters.delete(waiter))))
        })

      return SendBudget.of({
        awaitTurn: Effect.fn("SendBudget.awaitTurn")(function*(method: string, chatId: number | undefined) {
          if (!countedMethods.has(method)) {
            // Reads and callback answers (chat-bound or not) wait only for the chat's own flood wait.
            const left = yield* pausedMillis(chatId, false)
            yield* refuseLongWait(method, left)
            if (left > 0) yield* Effect.sleep(Duration.millis(left))
            return
          }
          const pass = yield* unusedPass(chatId)
          if (pass !== undefined) {
            pass.used = true
            if (chatPaced(method)) yield* charge(pass.chatId, yield* Clock.currentTimeMillis)
            return
          }
          yield* queue(method, chatId, yield* SendPriority, false)
        }),
        prepaid: <A, E, R>(chatId: number, effect: Effect.Effect<A, E, R>, method?: string) =>
          Effect.gen(function*() {
            // Inside a turn already taken for the chat and not used yet: that one pays.
            if ((yield* unusedPass(chatId)) !== undefined) return yield* effect
            yield* queue(method, chatId, yield* SendPriority, true)
            return yield* Effect.provideService(effect, SendPass, { chatId, used: false })
          }).pipe(Effect.withSpan("SendBudget.prepaid")),
        catchUp: Effect.fn("SendBudget.catchUp")(function*(chatId: number) {
          const { chatPace } = pace
          if (!chatLimits || chatPace === undefined) return
          const read = yield* Deferred.make<void>()
          catchingUp.set(chatId, read)
          yield* Effect.forkIn(Effect.gen(function*() {
            const millis = yield* chatPace(chatId)
            const now = yield* Clock.currentTimeMillis
            if (millis > 0) chatNextAt.set(chatId, Math.max(chatNextAt.get(chatId) ?? 0, now + millis))
          }).pipe(Effect.ensuring(Effect.suspend(() => {
            if (catchingUp.get(chatId) === read) catchingUp.delete(chatId)
            return Deferred.succeed(read, undefined)
          }))), scope)
        }),
        rememberFloodWait: Effect.fn("SendBudget.rememberFloodWait")(function*(chatId: number | undefined, seconds: number) {
          const now = yield* Clock.currentTimeMillis
          if (chatId !== undefined) floodUntil.set(chatId, Math.max(floodUntil.get(chatId) ?? 0, now + seconds * 1000))
          // Telegram does not say whose limit a 429 is. A group's own limit (20 a minute) is the
          // likely one there: only the group waits, and its pace moves past the wait, so the next
          // process to write to it waits too (no more than its burst right after). Elsewhere the
          // chats' limits are lenient and kept, so it is the bot's: everyone waits.
          if (chatId !== undefined && chatId < 0) {
            const { burst, intervalMs } = chatRule(chatId)
            const after = now + seconds * 1000 + (burst - 1) * intervalMs
            return yield* movePace(chatId, Math.max(chatNextAt.get(chatId) ?? 0, after), now)
          }
          botPausedUntil = Math.max(botPausedUntil, now + seconds * 1000)
          yield* pace.pause(seconds * 1000)
        }),
        floodWaitSeconds: Effect.fn("SendBudget.floodWaitSeconds")(function*(chatId: number) {
          return Math.ceil((yield* pausedMillis(chatId)) / 1000)
        })
      })
    })

  /**
   * One process's budget at `sendsPerSecond`, without settings (tests); `chatLimits: false` for
   * tests where time stands still (no chat waits for its pace, flood waits still hold).
   */
  static readonly layerTest = (sendsPerSecond: number, options?: { readonly chatLimits?: boolean }) =>
    Layer.effect(SendBudget, Effect.flatMap(memoryPace(sendsPerSecond), (pace) => SendBudget.make(pace, options)))

  /** The budget of one process, at TELEGRAM_SENDS_PER_SECOND (without REDIS_URL). */
  static readonly layer = Layer.unwrap(Effect.gen(function*() {
    const { telegramSendsPerSecond } = yield* AppConfig
    return SendBudget.layerTest(telegramSendsPerSecond)
  }))
}
