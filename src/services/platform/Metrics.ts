import { Metric } from "effect"

/** Every metric the programs export on /metrics (Prometheus text, served by http/HealthRoutes.ts). */

const secondsBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120]

export const httpRequests = Metric.counter("http_requests_total", {
  description: "HTTP requests answered, by route and status"
})

export const httpRequestDuration = Metric.histogram("http_request_duration_seconds", {
  description: "HTTP request latency by route",
  boundaries: secondsBuckets
})

export const updatesReceived = Metric.counter("telegram_updates_total", {
  description: "Telegram updates by outcome (accepted, duplicate, ignored)"
})

export const turnDuration = Metric.histogram("chat_turn_duration_seconds", {
  description: "Time of a chat turn, from pick-up to the final reply, by outcome",
  boundaries: secondsBuckets
})

export const turns = Metric.counter("chat_turns_total", {
  description: "Chat turns by kind and outcome"
})

export const llmTimeToFirstToken = Metric.histogram("llm_time_to_first_token_seconds", {
  description: "Time from the LLM request to its first streamed token",
  boundaries: secondsBuckets
})

export const llmTokens = Metric.counter("llm_tokens_total", {
  description: "LLM tokens by direction (in, out) and model"
})

export const llmErrors = Metric.counter("llm_errors_total", {
  description: "LLM request failures by HTTP status (0: network or timeout)"
})

export const telegramApiErrors = Metric.counter("telegram_api_errors_total", {
  description: "Telegram Bot API errors by method and error code (0: network or timeout)"
})

export const queueWait = Metric.histogram("queue_wait_seconds", {
  description: "Time from a chat's wake-up being enqueued to a worker picking it up",
  boundaries: secondsBuckets
})
