-- Abuse and trust: limits that answer once per window, and spend caps.

-- A limit's notice is said once per user per window (a minute, or the quota day): found by
-- the sender's recent messages decided with that limit's gate.
drop index messages_gate_recent;
create index messages_notice_recent on messages (user_id, received_at)
  where gate in ('slow_down', 'rate_limited', 'paywall', 'fair_use', 'token_cap', 'spend_cap');

-- The global daily spend cap sums the day's turns.
create index usage_day on usage (created_at);
