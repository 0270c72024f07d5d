-- Billing: subscriptions from any provider (LemonSqueezy now, Telegram Stars later), payments,
-- checkouts, promo seats, daily usage for quotas, notices in the chats' mailboxes, per-limit
-- overrides. The 0002 tables were empty placeholders: they are reshaped here.

insert into plans (id, name, price_cents, currency) values
  ('promo', 'Promo', 499, 'EUR'),
  ('standard', 'Standard', 999, 'EUR');

alter table subscriptions drop column lemonsqueezy_subscription_id;
alter table subscriptions drop column lemonsqueezy_customer_id;
alter table subscriptions add column provider text not null default 'lemonsqueezy';
alter table subscriptions add column provider_subscription_id text not null;
alter table subscriptions add column provider_customer_id text;
alter table subscriptions add column variant_id text;
-- signed, valid 24 h: refreshed on /account
alter table subscriptions add column customer_portal_url text;
alter table subscriptions add column update_payment_url text;
-- the provider's updated_at: older events never overwrite newer state
alter table subscriptions add column provider_updated_at timestamptz not null;
create unique index subscriptions_provider_id on subscriptions (provider, provider_subscription_id);

-- Stored but not applied (no user we know, a payload we cannot read): for the operator, with why.
alter table lemonsqueezy_events drop column subscription_id;
alter table lemonsqueezy_events add column test_mode boolean not null default false;
alter table lemonsqueezy_events add column flagged boolean not null default false;
alter table lemonsqueezy_events add column note text;
create index lemonsqueezy_events_flagged on lemonsqueezy_events (received_at) where flagged;

create table payments (
  id uuid primary key default gen_random_uuid(),
  provider text not null default 'lemonsqueezy',
  provider_invoice_id text not null,
  provider_subscription_id text not null,
  user_id bigint references users(id) on delete set null,
  billing_reason text,                            -- initial, renewal
  status text not null,                           -- paid, failed, refunded, ...
  currency text not null,
  subtotal_cents integer not null,
  tax_cents integer not null,
  total_cents integer not null,
  refunded_cents integer not null default 0,
  created_at timestamptz not null default now(),
  -- the provider's updated_at: older events never overwrite newer state
  updated_at timestamptz not null,
  unique (provider, provider_invoice_id)
);

create table checkouts (
  id uuid primary key default gen_random_uuid(),
  user_id bigint not null references users(id) on delete cascade,
  plan_id text not null references plans(id),
  provider text not null default 'lemonsqueezy',
  provider_checkout_id text not null,
  url text not null,
  expires_at timestamptz not null,
  created_at timestamptz not null default now()
);
create index checkouts_user on checkouts (user_id, created_at desc);

-- A promo seat is reserved by a promo checkout (until it expires) and held for life by a user
-- whose promo subscription became active. Held + live reservations never exceed PROMO_SEATS.
create table promo_seats (
  user_id bigint primary key references users(id) on delete cascade,
  held boolean not null default false,
  reserved_until timestamptz,
  created_at timestamptz not null default now()
);

-- User messages counted against the daily quota, per day of BILLING_TIMEZONE.
create table usage_daily (
  user_id bigint not null references users(id) on delete cascade,
  day date not null,
  messages integer not null default 0,
  primary key (user_id, day)
);

-- Notices (billing events told to the user) wait in the chat's mailbox like user messages, so
-- they are delivered once, in order, paced; they have no Telegram update.
alter table messages alter column update_id drop not null;
alter table messages alter column telegram_message_id drop not null;
alter table messages add column kind text not null default 'user' check (kind in ('user', 'notice'));
alter table messages add column buttons jsonb not null default '[]';
alter table messages add column notice_key text unique;
-- What the turn decided for a user message, once (Mailbox.Gate): a redo keeps the decision, so
-- the quota is never charged twice.
alter table messages add column gate text;
create index messages_gate_recent on messages (user_id, received_at) where gate = 'slow_down';

drop table rate_limit_overrides;
create table rate_limit_overrides (
  user_id bigint not null references users(id) on delete cascade,
  limit_name text not null check (limit_name in ('updates', 'llm', 'export')),
  max integer not null check (max >= 0),
  reason text,
  created_at timestamptz not null default now(),
  primary key (user_id, limit_name)
);
