import { Metric } from "effect"

/**
 * Every metric the programs export on GET /metrics (Prometheus text, served by
 * http/MetricsRoutes.ts). Durations are in seconds, as Prometheus expects.
 */

const secondsBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120]
const seconds = (name: string, description: string) => Metric.histogram(name, { description, boundaries: secondsBuckets })
const counter = (name: string, description: string) => Metric.counter(name, { description })
const gauge = (name: string, description: string) => Metric.gauge(name, { description })

export const httpRequests = counter("http_requests_total", "HTTP requests answered, by route and status")
export const httpRequestDuration = seconds("http_request_duration_seconds", "HTTP request latency by route")
export const updatesReceived = counter("telegram_updates_total", "Telegram updates by outcome (accepted, duplicate, ignored)")
export const turnDuration = seconds(
  "chat_turn_duration_seconds",
  "Time of a chat turn, from pick-up to the final reply, by outcome"
)
export const turns = counter(
  "chat_turns_total",
  "Chat turns by kind (message, command, over_limit) and outcome (answered, failed, unreachable, postponed)"
)
export const llmTimeToFirstToken = seconds("llm_time_to_first_token_seconds", "Time from the LLM request to its first streamed token")
export const llmTokens = counter("llm_tokens_total", "LLM tokens by direction (in, out) and model")
export const llmErrors = counter("llm_errors_total", "LLM request failures by HTTP status (0: network or timeout)")
export const telegramApiErrors = counter(
  "telegram_api_errors_total",
  "Telegram Bot API errors by method and error code (0: network or timeout)"
)
export const queueWait = seconds("queue_wait_seconds", "Time from a chat's wake-up being enqueued to a worker picking it up")
export const rateLimitRejections = counter("rate_limit_rejections_total", "Requests refused by a rate limit, by limit")
export const checkoutsStarted = counter("billing_checkouts_started_total", "Checkouts made for users, by plan")
export const subscriptionsCreated = counter("billing_subscriptions_created_total", "Subscriptions new to the bot, by plan")
export const subscriptionChanges = counter(
  "billing_subscription_changes_total",
  "Subscription changes told to their holders, by kind (activated, payment_failed, recovered, cancelled, resumed, paused, unpaid, expired)"
)
export const payments = counter("billing_payments_total", "Subscription payments by outcome (paid, failed, refunded)")
export const paymentAmount = counter(
  "billing_payment_amount_cents_total",
  "Amounts of subscription payments in cents (total, tax included), by outcome and currency"
)
export const refunds = counter("billing_refunds_total", "Refunds of orders and subscription payments")
export const activeSubscriptions = gauge("billing_active_subscriptions", "Subscriptions active, on trial or past due (grace), by plan")
export const monthlyRecurringRevenue = gauge(
  "billing_mrr_cents",
  "Monthly recurring revenue in cents: the last paid subtotal of each active or past-due subscription, by currency"
)
export const spendCapHits = counter(
  "llm_spend_cap_hits_total",
  "Messages not sent to the LLM past a spend cap: cap=user (USER_DAILY_TOKENS, PAID_DAILY_TOKENS) or daily_spend (DAILY_SPEND_LIMIT_USD)"
)
export const quotaHits = counter("billing_quota_hits_total", "Messages past the daily quota, by plan (free: paywall, paid: fair use)")
export const eventsFlagged = counter(
  "billing_events_flagged_total",
  "LemonSqueezy events stored but not applied (no user we know, a payload we cannot read): see lemonsqueezy_events.flagged"
)
export const sendWait = seconds(
  "telegram_send_wait_seconds",
  "Time a Bot API call that writes to a chat waited for its turn of the send budget, by priority (final, first, update)"
)
