import { Metric } from "effect"

/**
 * Every metric the programs export on GET /metrics (Prometheus text, served by
 * http/HealthRoutes.ts). Durations are in seconds, as Prometheus expects.
 */

const secondsBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120]
const seconds = (name: string, description: string) => Metric.histogram(name, { description, boundaries: secondsBuckets })
const counter = (name: string, description: string) => Metric.counter(name, { description })

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
