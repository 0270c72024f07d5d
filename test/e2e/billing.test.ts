import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { type LemonEvent, lemonFixture, lemonSignature, lemonWire } from "../support/fixtures.ts"
import { lemon, type Stack, startStack, waitForStatus } from "../support/Stack.ts"
import { textMessageUpdate } from "../support/telegram/FakeTelegram.ts"

let nextUpdateId = 50_000

const send = async (stack: Stack, userId: number, text: string) => {
  const update_id = nextUpdateId++
  expect((await stack.post({ update_id, ...textMessageUpdate({ chatId: userId, userId, text }) })).status).toBe(200)
  return update_id
}

/** Sends and waits for the message to be answered; returns what the chat shows last, with its buttons. */
const ask = async (stack: Stack, userId: number, text: string) => {
  const updateId = await send(stack, userId, text)
  await waitForStatus(stack, updateId, "answered", 20_000)
  const last = stack.telegram.lastMessage(userId)!
  const call = stack.telegram.callsFor(userId).filter((c) => c.method === "sendMessage" || c.method === "editMessageText").at(-1)
  const markup = call?.params["reply_markup"] as { inline_keyboard?: Array<Array<{ text: string; url: string }>> } | undefined
  return { text: last.text, buttons: (markup?.inline_keyboard ?? []).flat() }
}

const minutesFromNow = (minutes: number) => new Date(Date.now() + minutes * 60_000).toISOString()

/**
 * A real fixture, made about one user's subscription: `telegram_user_id` added to its custom
 * data (as our checkout sets it), the subscription's id and attributes changed as a later event
 * would have them.
 */
const eventFor = (
  name: string,
  fixture: string,
  userId: number,
  changes: { readonly id?: string; readonly attributes?: Record<string, unknown> } = {}
): LemonEvent => {
  const event = lemonFixture(fixture)
  return {
    ...event,
    meta: { ...event.meta, event_name: name, custom_data: { ...event.meta.custom_data, telegram_user_id: String(userId) } },
    data: { ...event.data, ...(changes.id ? { id: changes.id } : {}), attributes: { ...event.data.attributes, ...changes.attributes } }
  }
}

const subscriptionEvent = (name: string, userId: number, id: string, minute: number, attributes: Record<string, unknown>) =>
  eventFor(name, "subscription_created-time8-product", userId, {
    id,
    attributes: { updated_at: minutesFromNow(minute), renews_at: minutesFromNow(60 * 24 * 30), ...attributes }
  })

const invoiceEvent = (name: string, userId: number, invoiceId: string, subscriptionId: number, minute: number, attributes: Record<string, unknown> = {}) =>
  eventFor(name, "subscription_payment_success-time8-product", userId, {
    id: invoiceId,
    attributes: { subscription_id: subscriptionId, updated_at: minutesFromNow(minute), ...attributes }
  })

const count = (stack: Stack, sql: string) => Number(stack.query(sql))

describe("billing with LemonSqueezy", () => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack({
      billing: true,
      env: {
        FREE_DAILY_MESSAGES: "3",
        PROMO_SEATS: "2",
        LEMON_WEBHOOK_SECRET_PREVIOUS: "lemon-old-secret",
        RATE_LIMIT_LEMON_WEBHOOK_PER_MINUTE: "1000",
        RECONCILE_INTERVAL_SECONDS: "1",
        METRICS_TOKEN: "metrics-token-billing-0123456789abcdef"
      }
    })
  })
  afterAll(() => stack.stop())
  beforeEach(() => stack.resetFakes())

  describe("POST /lemonsqueezy/webhook", () => {
    it("takes every real fixture signed over its exact bytes, with the current or the previous secret", async () => {
      const names = [
        "order_created-codewriterbv-lemonsqueezy-java",
        "subscription_created-codewriterbv-lemonsqueezy-java",
        "subscription_updated-codewriterbv-lemonsqueezy-java",
        "subscription_payment_success-codewriterbv-lemonsqueezy-java",
        "license_key_created-codewriterbv-lemonsqueezy-java",
        "subscription_created-time8-product",
        "subscription_updated-time8-product",
        "subscription_payment_success-time8-product",
        "subscription_updated-status-cancelled-time8-product",
        "subscription_cancelled-time8-product"
      ]
      for (const [i, name] of names.entries()) {
        const body = lemonWire(lemonFixture(name))
        const secret = i % 2 === 0 ? lemon.webhookSecret : "lemon-old-secret"
        expect((await stack.postLemon(body, { signature: lemonSignature(body, secret) })).status, name).toBe(200)
      }
      expect(count(stack, "select count(*) from lemonsqueezy_events")).toBe(names.length)
      // None carries a telegram_user_id of ours: the subscription and payment events are kept and
      // flagged for the operator, not applied; an order and a license key are only kept.
      expect(stack.query("select string_agg(event_name, ',' order by event_name) from lemonsqueezy_events where not flagged")).toBe(
        "license_key_created,order_created"
      )
      expect(count(stack, "select count(*) from lemonsqueezy_events where flagged and note <> ''")).toBe(8)
      expect(count(stack, "select count(*) from lemonsqueezy_events where test_mode")).toBe(names.length)
      expect(count(stack, "select count(*) from subscriptions")).toBe(0)
    })

    it("refuses a wrong, missing or odd-length signature, and a body changed after signing, storing nothing", async () => {
      const stored = count(stack, "select count(*) from lemonsqueezy_events")
      const event = lemonFixture("subscription_created-time8-product")
      event.data.id = "refused-1"
      const body = lemonWire(event)
      const good = lemonSignature(body, lemon.webhookSecret)
      const refused = [
        await stack.postLemon(body, { signature: lemonSignature(body, "not-the-secret") }),
        await stack.postLemon(body, { signature: null }),
        await stack.postLemon(body, { signature: good.slice(0, 63) }),
        await stack.postLemon(body, { signature: `${good}0` }),
        await stack.postLemon(body, { signature: "z".repeat(64) }),
        // The same JSON, re-serialised (pretty, slashes unescaped): other bytes, so not signed.
        await stack.postLemon(JSON.stringify(JSON.parse(body), null, 2), { signature: good })
      ]
      expect(refused.map((r) => r.status)).toEqual([401, 401, 401, 401, 401, 401])
      expect(count(stack, "select count(*) from lemonsqueezy_events")).toBe(stored)
    })

    it("answers 400 to a signed body that is not an event, and 200 to an event name it does not know (kept)", async () => {
      expect((await stack.postLemon("{not json")).status).toBe(400)
      const unknown = lemonFixture("license_key_created-codewriterbv-lemonsqueezy-java")
      unknown.meta.event_name = "affiliate_activated"
      unknown.data.id = "unknown-event-1"
      expect((await stack.postLemon(unknown)).status).toBe(200)
      expect(stack.query("select count(*) from lemonsqueezy_events where event_name = 'affiliate_activated'")).toBe("1")
    })
  })

  it("tells the user each step of a subscription's life once, in Telegram, even when events are replayed", async () => {
    const userId = 61001
    expect((await ask(stack, userId, "hello")).text).toBe("Echo: hello")
    const id = "61001001"
    const sub = Number(id)
    const endsAt = minutesFromNow(60 * 24 * 20)
    const updatePayment = "https://fake.lemonsqueezy.test/subscription/61001001/payment-details?signature=x"
    const events = [
      subscriptionEvent("subscription_created", userId, id, 1, { status: "active", variant_id: Number(lemon.promoVariant) }),
      invoiceEvent("subscription_payment_success", userId, "inv-1", sub, 2),
      subscriptionEvent("subscription_updated", userId, id, 3, {
        status: "past_due",
        urls: { update_payment_method: updatePayment, customer_portal: "https://fake.lemonsqueezy.test/billing" }
      }),
      invoiceEvent("subscription_payment_failed", userId, "inv-2", sub, 3, { status: "failed" }),
      invoiceEvent("subscription_payment_recovered", userId, "inv-2", sub, 4),
      subscriptionEvent("subscription_updated", userId, id, 4, { status: "active" }),
      subscriptionEvent("subscription_cancelled", userId, id, 5, { status: "cancelled", cancelled: true, ends_at: endsAt }),
      subscriptionEvent("subscription_resumed", userId, id, 6, { status: "active", cancelled: false, ends_at: null }),
      subscriptionEvent("subscription_expired", userId, id, 7, { status: "expired", ends_at: minutesFromNow(7) }),
      invoiceEvent("subscription_payment_refunded", userId, "inv-1", sub, 8, { status: "refunded", refunded: true, refunded_amount: 67028 }),
      // LemonSqueezy also says the subscription's first order was refunded: the same money, told once.
      {
        ...eventFor("order_refunded", "order_created-codewriterbv-lemonsqueezy-java", userId, {
          id: "order-61001",
          attributes: { refunded: true, refunded_amount: 67028, first_order_item: { variant_id: Number(lemon.promoVariant) } }
        })
      }
    ]
    for (const event of events) expect((await stack.postLemon(event)).status).toBe(200)
    // LemonSqueezy retries: every event again, and nothing new is told.
    for (const event of events) expect((await stack.postLemon(event)).status).toBe(200)
    const told = [
      "Thank you! Your subscription is active",
      "Your subscription's payment didn't go through",
      "Your payment went through",
      "Your subscription is cancelled. You keep access until",
      "Your subscription is back on. It renews on",
      "Your subscription has ended",
      "You've been refunded PLN\u00a0670.28."
    ]
    // Every notice is queued by now (they were stored with their events): once a later message
    // is answered, the chat has told them all, in order.
    expect((await ask(stack, userId, "marker")).text).toBe("Echo: marker")
    const texts = stack.telegram.messages(userId).slice(1, -1).map((m) => m.text)
    expect(texts).toHaveLength(told.length)
    told.forEach((start, i) => expect(texts[i], start).toContain(start))
    expect(count(stack, `select count(*) from messages where user_id = ${userId} and kind = 'notice'`)).toBe(told.length)
    const failed = stack.telegram.callsFor(userId, "sendMessage").find((c) => String(c.params["text"]).includes("didn't go through"))!
    expect(JSON.stringify(failed.params["reply_markup"])).toContain("payment-details")
    expect(stack.query(`select status from subscriptions where provider_subscription_id = '${id}'`)).toBe("expired")
    expect(stack.query(`select string_agg(action, ',' order by id) from audit_logs where subject_user_id = ${userId}`)).toBe(
      [
        "subscription.created",
        "payment.paid",
        "subscription.status_changed",
        "payment.failed",
        "payment.paid",
        "subscription.status_changed",
        "subscription.status_changed",
        "subscription.status_changed",
        "subscription.status_changed",
        "payment.refunded",
        "order.refunded"
      ].join(",")
    )
    // The promo seat was taken when the promo subscription became active, for life.
    expect(stack.query(`select held from promo_seats where user_id = ${userId}`)).toBe("t")
  })

  it("never lets an older event overwrite newer state (reordered delivery)", async () => {
    const userId = 61002
    await ask(stack, userId, "hi")
    const id = "61002001"
    const cancelled = subscriptionEvent("subscription_updated", userId, id, 10, {
      status: "cancelled",
      ends_at: minutesFromNow(60 * 24 * 10)
    })
    const created = subscriptionEvent("subscription_created", userId, id, 1, { status: "active" })
    expect((await stack.postLemon(cancelled)).status).toBe(200)
    expect((await stack.postLemon(created)).status).toBe(200)
    expect(stack.query(`select status from subscriptions where provider_subscription_id = '${id}'`)).toBe("cancelled")
    // Cancelled until a date still to come: entitled.
    expect((await ask(stack, userId, "/account")).text).toContain("Cancelled: access until")
  })

  it("answers past the free quota with the paywall and a checkout made for the user, then lets a subscriber in", async () => {
    const userId = 61003
    for (const text of ["one", "two", "three"]) expect((await ask(stack, userId, text)).text).toBe(`Echo: ${text}`)
    stack.lemonSqueezy!.setPrice(lemon.promoVariant, 499)
    const paywall = await ask(stack, userId, "four")
    expect(paywall.text).toContain("You've used today's 3 free messages")
    expect(paywall.buttons).toHaveLength(1)
    const [checkout] = stack.lemonSqueezy!.checkouts
    expect(paywall.buttons[0]!.url).toBe(`https://fake.lemonsqueezy.test/checkout/custom/${checkout!.id}`)
    expect(checkout).toMatchObject({
      storeId: lemon.storeId,
      variantId: lemon.promoVariant,
      custom: { telegram_user_id: String(userId) },
      redirectUrl: "https://t.me/fake_test_bot"
    })
    // /subscribe shows the price LemonSqueezy has for the plan.
    expect((await ask(stack, userId, "/subscribe")).text).toBe(
      "Subscribe for €4.99 a month, for life: you're among the first subscribers. Unlimited messages (fair use)."
    )
    // The paywall is shown once a day: more messages get no reply (issue 9: a flood past the
    // quota is not a flood of paywalls), and the LLM was never asked past the quota.
    const shown = stack.telegram.messages(userId).length
    for (const text of ["five", "six", "seven"]) await waitForStatus(stack, await send(stack, userId, text), "skipped", 20_000)
    expect(stack.telegram.messages(userId)).toHaveLength(shown)
    expect(stack.lemonSqueezy!.checkouts).toHaveLength(1)
    expect(stack.openai.requests.map((r) => r.body.messages?.at(-1)?.content)).toEqual(["one", "two", "three"])
    expect(stack.query(`select string_agg(gate, ',' order by id) from messages where user_id = ${userId} and text in ('four', 'five', 'six', 'seven')`))
      .toBe("paywall,paywall,paywall,paywall")
    // /subscribe (a command, not counted) still answers, and reuses the checkout.
    expect((await ask(stack, userId, "/subscribe")).buttons[0]!.url).toBe(paywall.buttons[0]!.url)
    expect(stack.lemonSqueezy!.checkouts).toHaveLength(1)
    // They pay: the bot says so, and they are unlimited (fair use) at once.
    const created = subscriptionEvent("subscription_created", userId, "61003001", 1, { status: "active", variant_id: Number(lemon.promoVariant) })
    expect((await stack.postLemon(created)).status).toBe(200)
    await stack.telegram.waitFor((t) => t.lastMessage(userId)?.text.startsWith("Thank you!") || undefined, 10_000)
    expect((await ask(stack, userId, "eight")).text).toBe("Echo: eight")
    // /account: the plan, the renewal, today's use, and a fresh portal link from the API.
    stack.lemonSqueezy!.setSubscription("61003001", {
      ...lemonFixture("subscription_created-time8-product").data.attributes,
      urls: { customer_portal: "https://fake.lemonsqueezy.test/billing?fresh=1", update_payment_method: null }
    })
    const account = await ask(stack, userId, "/account")
    expect(account.text).toContain("Plan: Promo")
    expect(account.text).toContain("Renews on")
    expect(account.text).toContain("Today: 4 messages (fair use: 2000 a day)")
    expect(account.buttons).toEqual([{ text: "Manage subscription", url: "https://fake.lemonsqueezy.test/billing?fresh=1" }])
  })

  it("never oversells promo seats, even when checkouts race for the last one", async () => {
    // Seats: 2, both held: everyone gets standard...
    stack.query("insert into users (id, first_name) values (61091, 'a'), (61092, 'b') on conflict do nothing")
    stack.query("delete from promo_seats")
    stack.query("insert into promo_seats (user_id, held) values (61091, true), (61092, true)")
    const racers = [61011, 61012, 61013, 61014, 61015]
    const racing = async () => {
      const ids = await Promise.all(racers.map((userId) => send(stack, userId, "/subscribe")))
      for (const id of ids) await waitForStatus(stack, id, "answered", 20_000)
    }
    await racing()
    expect(stack.lemonSqueezy!.checkouts.map((c) => c.variantId)).toEqual(racers.map(() => lemon.standardVariant))
    // ...and once a seat frees up (the operator removed a holder), exactly one racer gets it.
    stack.query("delete from promo_seats where user_id = 61091")
    stack.query(`delete from checkouts where user_id in (${racers.join(",")})`)
    stack.lemonSqueezy!.reset()
    await racing()
    const variants = stack.lemonSqueezy!.checkouts.map((c) => c.variantId)
    expect(variants.filter((v) => v === lemon.promoVariant)).toHaveLength(1)
    expect(variants.filter((v) => v === lemon.standardVariant)).toHaveLength(racers.length - 1)
    expect(count(stack, "select count(*) from promo_seats where held or reserved_until > now()")).toBe(2)
  })

  it("says to try later when LemonSqueezy is away, and keeps no seat for that", async () => {
    const userId = 61021
    stack.query("delete from promo_seats where not held")
    // Four answers of 503: the first try and the three retries.
    stack.lemonSqueezy!.failNext({ status: 503 }, 4, "POST /v1/checkouts")
    const away = await ask(stack, userId, "/subscribe")
    expect(away.text).toBe("Subscribing isn't possible right now. Please try again in a few minutes.")
    expect(away.buttons).toEqual([])
    expect(stack.query(`select count(*) from promo_seats where user_id = ${userId}`)).toBe("0")
    const back = await ask(stack, userId, "/subscribe")
    expect(back.buttons.map((b) => b.text)).toEqual(["Subscribe"])
  })

  it("repairs a subscription a webhook never told about, from the API", async () => {
    const userId = 61031
    await ask(stack, userId, "hi")
    const id = "61031001"
    expect((await stack.postLemon(subscriptionEvent("subscription_created", userId, id, 1, { status: "active" }))).status).toBe(200)
    // The cancellation's webhook got lost; the API knows.
    stack.lemonSqueezy!.setSubscription(id, {
      ...subscriptionEvent("subscription_updated", userId, id, 30, { status: "cancelled", ends_at: minutesFromNow(60 * 24) }).data.attributes
    })
    await stack.telegram.waitFor((t) => t.lastMessage(userId)?.text.startsWith("Your subscription is cancelled") || undefined, 15_000)
    expect(stack.query(`select status from subscriptions where provider_subscription_id = '${id}'`)).toBe("cancelled")
    expect(stack.query(`select actor from audit_logs where subject_user_id = ${userId} order by id desc limit 1`)).toBe("reconciler")
  })

  it("sends billing to a private chat from a group, and takes the link's /start there", async () => {
    const userId = 61041
    const group = -61041
    const updateId = nextUpdateId++
    const inGroup = { update_id: updateId, ...textMessageUpdate({ chatId: group, userId, groupTitle: "Team", text: "/subscribe" }) }
    expect((await stack.post(inGroup)).status).toBe(200)
    await waitForStatus(stack, updateId, "answered")
    const reply = stack.telegram.callsFor(group, "sendMessage").at(-1)!
    expect(String(reply.params["text"])).toBe("Let's talk about that in a private chat: tap the button.")
    expect(JSON.stringify(reply.params["reply_markup"])).toContain("https://t.me/fake_test_bot?start=subscribe")
    expect(stack.lemonSqueezy!.checkouts).toEqual([])
    // The link's /start, in the private chat: the checkout.
    const started = await ask(stack, userId, "/start subscribe")
    expect(started.buttons.map((b) => b.text)).toEqual(["Subscribe"])
    expect(stack.lemonSqueezy!.checkouts).toHaveLength(1)
  })

  it("applies two deliveries of a new subscription at once as one creation, the later state winning a tie", async () => {
    const userId = 61051
    await ask(stack, userId, "hi")
    const id = "61051001"
    const second = minutesFromNow(2)
    const created = subscriptionEvent("subscription_created", userId, id, 0, { status: "active", updated_at: second })
    const updated = subscriptionEvent("subscription_updated", userId, id, 0, {
      status: "cancelled",
      ends_at: minutesFromNow(60 * 24 * 30),
      updated_at: second
    })
    const statuses = await Promise.all([stack.postLemon(created), stack.postLemon(updated)])
    expect(statuses.map((r) => r.status)).toEqual([200, 200])
    expect(stack.query(`select status from subscriptions where provider_subscription_id = '${id}'`)).toBe("cancelled")
    expect(count(stack, `select count(*) from audit_logs where subject_user_id = ${userId} and action = 'subscription.created'`)).toBe(1)
  })

  it("exports the billing metrics", async () => {
    const text = await (await fetch(`${stack.url}/metrics`, { headers: { authorization: "Bearer metrics-token-billing-0123456789abcdef" } })).text()
    for (const pattern of [
      /billing_checkouts_started_total\{[^}]*plan="promo"[^}]*\} [1-9]/,
      /billing_subscriptions_created_total\{[^}]*\} [1-9]/,
      /billing_payments_total\{[^}]*outcome="paid"[^}]*\} [1-9]/,
      /billing_payment_amount_cents_total\{[^}]*currency="PLN"[^}]*\} [1-9]/,
      /billing_refunds_total [1-9]/,
      /billing_subscription_changes_total\{[^}]*kind="expired"[^}]*\} [1-9]/,
      /billing_active_subscriptions\{[^}]*plan="promo"[^}]*\} [1-9]/,
      /billing_quota_hits_total\{[^}]*plan="free"[^}]*\} [1-9]/
    ]) {
      expect(text).toMatch(pattern)
    }
  })
})

describe("billing off", () => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack({ env: { FREE_DAILY_MESSAGES: "1" } })
  })
  afterAll(() => stack.stop())

  it("says subscriptions are not available, and still applies the free quota", async () => {
    const userId = 62001
    expect((await ask(stack, userId, "/subscribe")).text).toBe("Subscriptions are not available here.")
    expect((await ask(stack, userId, "first")).text).toBe("Echo: first")
    const second = await ask(stack, userId, "second")
    expect(second.text).toBe("You've used today's free message. More tomorrow, from midnight (UTC time).")
    expect(second.buttons).toEqual([])
    expect(stack.openai.requests).toHaveLength(1)
    expect((await stack.postLemon("{}", { signature: "0".repeat(64) })).status).toBe(404)
  })
})

describe("the LemonSqueezy webhook's rate limit", () => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack({ billing: true, env: { RATE_LIMIT_LEMON_WEBHOOK_PER_MINUTE: "3" } })
  })
  afterAll(() => stack.stop())

  it("answers 429 with Retry-After past the limit to requests that fail verification, never to signed deliveries", async () => {
    const body = lemonWire(lemonFixture("order_created-codewriterbv-lemonsqueezy-java"))
    const statuses: Array<number> = []
    let retryAfter = ""
    for (let i = 0; i < 4; i++) {
      const res = await stack.postLemon(body, { signature: lemonSignature(body, "forged") })
      statuses.push(res.status)
      retryAfter = res.headers.get("retry-after") ?? retryAfter
    }
    expect(statuses).toEqual([401, 401, 401, 429])
    expect(Number(retryAfter)).toBeGreaterThan(0)
    // LemonSqueezy's own deliveries from the same address still go through.
    for (let i = 0; i < 5; i++) {
      const event = lemonFixture("order_created-codewriterbv-lemonsqueezy-java")
      event.data.id = `order-${i}`
      expect((await stack.postLemon(event)).status).toBe(200)
    }
    expect(stack.query("select count(*) from lemonsqueezy_events")).toBe("5")
  })
})
