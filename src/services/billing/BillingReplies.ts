import { Context, Duration, Effect, Exit, Layer, Option } from "effect"
import { AppConfig } from "../platform/AppConfig.ts"
import type { StorageOutage } from "../platform/StorageOutage.ts"
import { BotIdentity } from "../telegram/BotIdentity.ts"
import { type BillingReply, billingTexts, formatDate, planNames, type Price } from "./BillingTexts.ts"
import { Checkout, type CheckoutPurpose } from "./Checkout.ts"
import { LemonSqueezy, LemonSqueezyError } from "./LemonSqueezy.ts"
import { Quota } from "./Quota.ts"
import { type HeldSubscription, Subscriptions } from "./Subscriptions.ts"

/** The longest a reply waits on LemonSqueezy (retries included) before saying "try later". */
const interactiveBudget = Duration.seconds(12)
/** How long a plan's price is remembered (operators rarely change it). */
const priceTtl = Duration.hours(1)

/** Where the reply goes: billing links are personal, so a group is sent to a private chat. */
export type ChatKind = "private" | "group"

/**
 * What /subscribe, /account and the paywall show, with their buttons (checkout, customer portal,
 * update payment method). In a group, a button to a private chat with the bot instead: a checkout
 * or a portal link there would let another member pay for, or cancel, someone's subscription.
 */
export class BillingReplies extends Context.Service<BillingReplies, {
  /**
   * A checkout button at the user's price (promo while seats last), "subscribed already" (or
   * cancelled, or on hold) with the portal, or "not available here" when billing is off.
   * LemonSqueezy away: "try again later".
   */
  readonly subscribe: (userId: number, where: ChatKind) => Effect.Effect<BillingReply, StorageOutage>
  /** The plan, its renewal or end date, today's usage, and fresh customer-portal buttons. */
  readonly account: (userId: number, where: ChatKind) => Effect.Effect<BillingReply, StorageOutage>
  /** Past the free quota of `limit` messages: the paywall, with a checkout button when one can be made. */
  readonly paywall: (userId: number, limit: number, where: ChatKind) => Effect.Effect<BillingReply, StorageOutage>
}>()("bot/BillingReplies") {
  static readonly layer = Layer.effect(
    BillingReplies,
    Effect.gen(function*() {
      const config = yield* AppConfig
      const identity = yield* BotIdentity
      const subscriptions = yield* Subscriptions
      const checkout = yield* Checkout
      const lemon = yield* LemonSqueezy
      const quota = yield* Quota
      const billingOn = Option.isSome(config.lemonSqueezy)
      const date = (value: Date | null) => (value === null ? "?" : formatDate(value, config.billingTimezone))
      const interactive = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
        Effect.timeoutOrElse(effect, {
          duration: interactiveBudget,
          orElse: () => Effect.fail(new LemonSqueezyError({ status: 0, message: "LemonSqueezy took too long" }))
        })

      const botLink = identity.link
      const privateChat = (start: "subscribe" | "account") =>
        botLink.pipe(
          Effect.map((link) => [{ text: billingTexts.privateChatButton, url: `${link}?start=${start}` }]),
          Effect.orElseSucceed(() => [])
        )

      const prices = new Map<string, Effect.Effect<Price, LemonSqueezyError>>()
      /** The plan's price from LemonSqueezy (cached an hour), or undefined when it cannot be read now. */
      const priceOf = (plan: "promo" | "standard") =>
        Effect.gen(function*() {
          const variant = Option.getOrThrow(config.lemonSqueezy).variants[plan]
          let cached = prices.get(variant)
          if (cached === undefined) {
            cached = yield* lemon.getPrice(variant).pipe(Effect.cachedWithTTL((exit) => (Exit.isSuccess(exit) ? priceTtl : Duration.zero)))
            prices.set(variant, cached)
          }
          return yield* interactive(cached).pipe(Effect.map((price): Price | undefined => price), Effect.orElseSucceed(() => undefined))
        })

      /** A checkout's URL and plan, or None when LemonSqueezy or Telegram cannot make one now (logged). */
      const checkoutFor = (userId: number, purpose: CheckoutPurpose) =>
        botLink.pipe(
          Effect.flatMap((link) => interactive(checkout.open(userId, link, purpose))),
          Effect.map(Option.some),
          Effect.catchTag(["LemonSqueezyError", "TelegramApiError", "UnreachableChat", "RejectedFormatting", "MessageGone", "ChatMigrated"], (error) =>
            Effect.logWarning("no checkout for the user", error.message).pipe(Effect.as(Option.none())))
        )

      /** The subscription's fresh signed links (valid 24 h): the portal, and where to fix the card. */
      const links = (subscription: HeldSubscription) =>
        interactive(lemon.getSubscription(subscription.providerSubscriptionId)).pipe(
          Effect.map((fresh) => [
            ...(subscription.status === "past_due" || subscription.status === "unpaid"
              ? Option.toArray(Option.map(Option.fromNullishOr(fresh.urls?.update_payment_method), (url) => ({
                text: billingTexts.updatePaymentButton,
                url
              })))
              : []),
            ...Option.toArray(Option.map(Option.fromNullishOr(fresh.urls?.customer_portal), (url) => ({ text: billingTexts.portalButton, url })))
          ]),
          Effect.catchTag("LemonSqueezyError", (error) =>
            Effect.logWarning("no customer-portal link", error.message).pipe(Effect.as([])))
        )

      const statusLine = (s: HeldSubscription): string => {
        switch (s.status) {
          case "active":
            return `Renews on ${date(s.renewsAt)}.`
          case "on_trial":
            return `Trial; renews on ${date(s.renewsAt)}.`
          case "past_due":
            return "The last payment failed: please update your payment method (you keep access meanwhile)."
          case "cancelled":
            return `Cancelled: access until ${date(s.endsAt)}.`
          default:
            return `Your last subscription is ${s.status.replace("_", " ")}.`
        }
      }

      return BillingReplies.of({
        subscribe: Effect.fn("BillingReplies.subscribe")(function*(userId: number, where: ChatKind) {
          if (!billingOn) return { text: billingTexts.billingOff, buttons: [] }
          if (where === "group") return { text: billingTexts.inPrivate, buttons: yield* privateChat("subscribe") }
          const { plan, subscription } = yield* subscriptions.entitlement(userId)
          const latest = Option.getOrUndefined(subscription)
          // A subscription they have (or can resume) is managed in the portal, not bought twice.
          if (latest !== undefined && (plan !== "free" || latest.status === "paused" || latest.status === "unpaid")) {
            const text = plan === "free"
              ? billingTexts.onHold
              : latest.status === "cancelled"
              ? billingTexts.cancelledUntil(date(latest.endsAt))
              : billingTexts.alreadySubscribed
            return { text, buttons: yield* links(latest) }
          }
          const open = yield* checkoutFor(userId, "subscribe")
          if (Option.isNone(open)) return { text: billingTexts.checkoutUnavailable, buttons: [] }
          return {
            text: billingTexts.subscribe(open.value.plan, yield* priceOf(open.value.plan)),
            buttons: [{ text: billingTexts.subscribeButton, url: open.value.url }]
          }
        }),
        account: Effect.fn("BillingReplies.account")(function*(userId: number, where: ChatKind) {
          if (where === "group") return { text: billingTexts.inPrivate, buttons: yield* privateChat("account") }
          const { plan, subscription } = yield* subscriptions.entitlement(userId)
          const today = yield* quota.today(userId, plan)
          const usage = today.limit === 0
            ? `Today: ${today.used} messages.`
            : plan === "free"
            ? `Today: ${today.used} of ${today.limit} free messages.`
            : `Today: ${today.used} messages (fair use: ${today.limit} a day).`
          const lines = [
            `Plan: ${planNames[plan]}.`,
            ...Option.toArray(Option.map(subscription, statusLine)),
            usage,
            ...(billingOn && plan === "free" ? ["/subscribe for unlimited messages."] : [])
          ]
          const buttons = Option.isSome(subscription) && billingOn ? yield* links(subscription.value) : []
          return { text: billingTexts.account(lines), buttons }
        }),
        paywall: Effect.fn("BillingReplies.paywall")(function*(userId: number, limit: number, where: ChatKind) {
          if (!billingOn) return { text: billingTexts.paywallBillingOff(limit, config.billingTimezone), buttons: [] }
          if (where === "group") return { text: billingTexts.paywallInGroup(limit), buttons: yield* privateChat("subscribe") }
          const open = yield* checkoutFor(userId, "paywall")
          if (Option.isNone(open)) return { text: billingTexts.paywallNoCheckout(limit), buttons: [] }
          return { text: billingTexts.paywall(limit), buttons: [{ text: billingTexts.subscribeButton, url: open.value.url }] }
        })
      })
    })
  )
}
