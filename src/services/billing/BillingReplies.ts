import { Context, Duration, Effect, Exit, Layer, Option } from "effect"
import { AppConfig } from "../platform/AppConfig.ts"
import type { StorageOutage } from "../platform/StorageOutage.ts"
import { Telegram } from "../telegram/Telegram.ts"
import { type BillingReply, billingTexts, formatDate, planNames } from "./BillingTexts.ts"
import { Checkout } from "./Checkout.ts"
import { LemonSqueezy } from "./LemonSqueezy.ts"
import { Quota } from "./Quota.ts"
import { type HeldSubscription, Subscriptions } from "./Subscriptions.ts"

/** What /subscribe, /account and the paywall show, with their buttons (checkout, customer portal). */
export class BillingReplies extends Context.Service<BillingReplies, {
  /**
   * A checkout button at the user's price (promo while seats last), "subscribed already" with the
   * portal, or "not available here" when billing is off. LemonSqueezy away: "try again later".
   */
  readonly subscribe: (userId: number) => Effect.Effect<BillingReply, StorageOutage>
  /** The plan, its renewal or end date, today's usage, and a fresh customer-portal button. */
  readonly account: (userId: number) => Effect.Effect<BillingReply, StorageOutage>
  /** Past the free quota of `limit` messages: the paywall, with a checkout button when one can be made. */
  readonly paywall: (userId: number, limit: number) => Effect.Effect<BillingReply, StorageOutage>
}>()("bot/BillingReplies") {
  static readonly layer = Layer.effect(
    BillingReplies,
    Effect.gen(function*() {
      const config = yield* AppConfig
      const telegram = yield* Telegram
      const subscriptions = yield* Subscriptions
      const checkout = yield* Checkout
      const lemon = yield* LemonSqueezy
      const quota = yield* Quota
      const billingOn = Option.isSome(config.lemonSqueezy)
      const date = (value: Date | null) => (value === null ? "?" : formatDate(value, config.billingTimezone))

      // Where the buyer lands after paying: back in the chat (https://t.me/<username>), asked once.
      const botLink = yield* telegram.getMe.pipe(
        Effect.map((me) => `https://t.me/${me.username}`),
        Effect.cachedWithTTL((exit) => (Exit.isSuccess(exit) ? Duration.infinity : Duration.zero))
      )

      /** A checkout's URL, or None when LemonSqueezy or Telegram cannot make one now (logged). */
      const checkoutFor = (userId: number) =>
        botLink.pipe(
          Effect.flatMap((link) => checkout.open(userId, link)),
          Effect.map(Option.some),
          Effect.catchTag(["LemonSqueezyError", "TelegramApiError", "UnreachableChat", "RejectedFormatting", "MessageGone"], (error) =>
            Effect.logWarning("no checkout for the user", error.message).pipe(Effect.as(Option.none())))
        )

      /** The customer portal, signed for 24 h: fetched fresh for the subscription. */
      const portal = (subscription: HeldSubscription) =>
        lemon.getSubscription(subscription.providerSubscriptionId).pipe(
          Effect.map((fresh) => Option.fromNullishOr(fresh.urls?.customer_portal)),
          Effect.catchTag("LemonSqueezyError", (error) =>
            Effect.logWarning("no customer-portal link", error.message).pipe(Effect.as(Option.none<string>())))
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
        subscribe: Effect.fn("BillingReplies.subscribe")(function*(userId: number) {
          if (!billingOn) return { text: billingTexts.billingOff, buttons: [] }
          const { plan, subscription } = yield* subscriptions.entitlement(userId)
          if (plan !== "free" && Option.isSome(subscription)) {
            const link = yield* portal(subscription.value)
            return {
              text: billingTexts.alreadySubscribed,
              buttons: Option.toArray(Option.map(link, (url) => ({ text: billingTexts.portalButton, url })))
            }
          }
          const open = yield* checkoutFor(userId)
          if (Option.isNone(open)) return { text: billingTexts.checkoutUnavailable, buttons: [] }
          return {
            text: billingTexts.subscribe(open.value.plan),
            buttons: [{ text: billingTexts.subscribeButton, url: open.value.url }]
          }
        }),
        account: Effect.fn("BillingReplies.account")(function*(userId: number) {
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
          const link = Option.isSome(subscription) && billingOn ? yield* portal(subscription.value) : Option.none<string>()
          return {
            text: billingTexts.account(lines),
            buttons: Option.toArray(Option.map(link, (url) => ({ text: billingTexts.portalButton, url })))
          }
        }),
        paywall: Effect.fn("BillingReplies.paywall")(function*(userId: number, limit: number) {
          const open = billingOn ? yield* checkoutFor(userId) : Option.none()
          if (Option.isNone(open)) return { text: billingOn ? billingTexts.paywallNoCheckout(limit) : billingTexts.paywallBillingOff(limit), buttons: [] }
          return { text: billingTexts.paywall(limit), buttons: [{ text: billingTexts.subscribeButton, url: open.value.url }] }
        })
      })
    })
  )
}
