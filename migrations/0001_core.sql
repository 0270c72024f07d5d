-- Core chat pipeline: users, conversations, the per-chat mailbox (messages), idempotent update log,
-- usage per turn and the audit trail. Statements are separated by ";" at the end of a line.

create table users (
  id bigint primary key,                       -- Telegram user id
  username text,
  first_name text not null default '',
  last_name text,
  language_code text,
  is_bot boolean not null default false,
  role text not null default 'user' check (role in ('user', 'admin')),
  unreachable_at timestamptz,                  -- set when Telegram says blocked / chat not found
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create table chats (
  id bigint primary key,                       -- Telegram chat id
  type text not null check (type in ('private', 'group', 'supergroup', 'channel')),
  title text,
  unreachable_at timestamptz,
  created_at timestamptz not null default now()
);

create table conversations (
  id uuid primary key default gen_random_uuid(),
  chat_id bigint not null references chats(id) on delete cascade,
  user_id bigint references users(id) on delete set null,
  started_at timestamptz not null default now(),
  ended_at timestamptz
);
-- At most one open conversation per chat: /new closes it and opens the next.
create unique index conversations_open_per_chat on conversations (chat_id) where ended_at is null;

create table telegram_updates (
  update_id bigint primary key,
  kind text not null,
  received_at timestamptz not null default now()
);

-- The mailbox: one row per inbound user message, in arrival order (id), and its answer.
create table messages (
  id bigint generated always as identity primary key,
  update_id bigint not null unique references telegram_updates(update_id) on delete cascade,
  chat_id bigint not null references chats(id) on delete cascade,
  user_id bigint references users(id) on delete set null,
  telegram_message_id bigint not null,
  conversation_id uuid references conversations(id) on delete set null, -- set when the turn runs
  text text not null,
  over_limit boolean not null default false,     -- sent past the per-user rate limit: answered with a notice
  status text not null default 'queued'
    check (status in ('queued', 'processing', 'answered', 'failed', 'skipped')),
  attempts integer not null default 0,          -- turns started; a crash mid-turn leaves it 'processing'
  answer text,
  reply_message_ids jsonb not null default '[]',  -- Telegram ids of the reply, stored as soon as each exists
  error text,
  received_at timestamptz not null default now(),
  answered_at timestamptz
);
create index messages_mailbox on messages (chat_id, id) where status in ('queued', 'processing');
create index messages_history on messages (conversation_id, id) where status = 'answered';

create table usage (
  id bigint generated always as identity primary key,
  message_id bigint references messages(id) on delete set null,
  user_id bigint references users(id) on delete set null,
  chat_id bigint not null,
  model text not null,
  tokens_in integer not null default 0,
  tokens_out integer not null default 0,
  cost_micro_cents bigint not null default 0,
  latency_ms integer not null,
  ttft_ms integer,
  outcome text not null check (outcome in ('answered', 'failed')),
  created_at timestamptz not null default now()
);
create index usage_user_day on usage (user_id, created_at);

create table audit_logs (
  id bigint generated always as identity primary key,
  actor text not null,
  action text not null,
  subject_user_id bigint,
  details jsonb not null default '{}',
  created_at timestamptz not null default now()
);
create index audit_logs_subject on audit_logs (subject_user_id, created_at);
