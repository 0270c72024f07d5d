-- Operability: each message keeps the trace of the request (or poll) that brought it, so its
-- turn, maybe in another process, joins that trace.

-- The W3C traceparent of the webhook request or poll that stored the message; null for notices.
alter table messages add column trace_context text;
