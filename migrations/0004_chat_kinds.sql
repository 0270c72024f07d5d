-- Every kind of chat and message: forum topics, attachments, merged bursts, stop requests and
-- groups moved to a supergroup.

-- The forum topic (message_thread_id) a message came from and is answered in; 0: none (General,
-- or a chat without topics). Each topic is its own conversation.
alter table messages add column thread_id bigint not null default 0;
alter table conversations add column thread_id bigint not null default 0;
drop index conversations_open_per_chat;
create unique index conversations_open_per_topic on conversations (chat_id, thread_id) where ended_at is null;

-- What the message carried besides text ('photo', 'voice', ...), and its album.
alter table messages add column attachment text;
alter table messages add column media_group_id text;
create index messages_album on messages (chat_id, media_group_id) where media_group_id is not null;
-- When the user sent it (Telegram's date): bursts are told by it, not by when it arrived.
-- Rows from before get the migration's time (a constant default: no table rewrite).
alter table messages add column sent_at timestamptz not null default now();
-- "I can only read text" is said at most once per chat per 10 minutes: the gate it is noted by.
create index messages_text_only_recent on messages (chat_id, received_at) where gate = 'text_only';

-- A message answered together with an earlier one of the same burst (BURST_MERGE_MS): it is
-- 'merged' into that one, whose answer covers both.
alter table messages add column merged_into bigint references messages(id) on delete cascade;
alter table messages drop constraint messages_status_check;
-- NOT VALID then VALIDATE: a big table is checked without blocking writes meanwhile.
alter table messages add constraint messages_status_check
  check (status in ('queued', 'processing', 'answered', 'failed', 'skipped', 'merged')) not valid;
alter table messages validate constraint messages_status_check;
create index messages_merged on messages (merged_into) where merged_into is not null;

-- The user pressed stop while the answer was streaming (a draft's stop, or the Stop button).
alter table messages add column stop_requested_at timestamptz;
alter table usage drop constraint usage_outcome_check;
alter table usage add constraint usage_outcome_check check (outcome in ('answered', 'failed', 'stopped')) not valid;
alter table usage validate constraint usage_outcome_check;

-- A group upgraded to a supergroup: its rows moved to the new chat, this one says where.
alter table chats add column migrated_to_chat_id bigint;
create index chats_migrated on chats (id) where migrated_to_chat_id is not null;
