-- Tables the later capabilities fill (plans, subscriptions, payments, sessions, support,
-- per-user overrides, flags, experiments), created now so their ids and references are settled.

create table plans (
  id text primary key,                          -- 'promo', 'standard'
  name text not null,
  price_cents integer not null check (price_cents >= 0),
  currency text not null default 'EUR',
  lemonsqueezy_variant_id bigint,
  seats integer,                                -- null: unlimited seats
  active boolean not null default true,
  created_at timestamptz not null default now()
);

create table subscriptions (
  id uuid primary key default gen_random_uuid(),
  user_id bigint not null references users(id) on delete cascade,
  plan_id text not null references plans(id),
  lemonsqueezy_subscription_id bigint unique,
  lemonsqueezy_customer_id bigint,
  status text not null,
  renews_at timestamptz,
  ends_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index subscriptions_user on subscriptions (user_id);

create table lemonsqueezy_events (
  id uuid primary key default gen_random_uuid(),
  event_name text not null,
  dedupe_key text not null unique,
  subscription_id uuid references subscriptions(id) on delete set null,
  payload jsonb not null,
  received_at timestamptz not null default now(),
  processed_at timestamptz
);

create table sessions (
  id uuid primary key default gen_random_uuid(),
  user_id bigint not null references users(id) on delete cascade,
  token_hash text not null unique,
  expires_at timestamptz not null,
  created_at timestamptz not null default now()
);

create table support_tickets (
  id uuid primary key default gen_random_uuid(),
  user_id bigint references users(id) on delete set null,
  subject text not null,
  body text not null,
  status text not null default 'open',
  created_at timestamptz not null default now()
);

create table rate_limit_overrides (
  user_id bigint primary key references users(id) on delete cascade,
  daily_turns integer,
  per_minute integer,
  reason text,
  created_at timestamptz not null default now()
);

create table feature_flags (
  key text primary key,
  enabled boolean not null default false,
  rollout_percent integer not null default 0 check (rollout_percent between 0 and 100),
  updated_at timestamptz not null default now()
);

create table experiments (
  id text primary key,
  variants jsonb not null,
  active boolean not null default true,
  created_at timestamptz not null default now()
);

create table user_experiments (
  user_id bigint not null references users(id) on delete cascade,
  experiment_id text not null references experiments(id) on delete cascade,
  variant text not null,
  assigned_at timestamptz not null default now(),
  primary key (user_id, experiment_id)
);
