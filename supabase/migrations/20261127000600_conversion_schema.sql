-- Schema of the Conversion Intelligence layer: the seed spec's migration 014,
-- corrected. Adds the contract's columns to the host tables (only `add column if
-- not exists`, constant defaults so no table is rewritten), a uuid_generate_v7()
-- where the server lacks one, and the two pattern tables with their checks,
-- indexes and row-level security.
-- Dropped from 014: the GIN index on leads.als_components (nothing searches it,
-- every lead write would pay for it), the index on led_to_booking alone (replaced
-- by a partial index by client), and the original mark_converting_touch trigger
-- (see the converting_touch migration).

-- Time-ordered UUID (RFC 9562 version 7), for servers without one.
do $v7$
begin
  if pg_catalog.to_regprocedure('public.uuid_generate_v7()') is null then
    create function public.uuid_generate_v7() returns uuid
    language sql volatile parallel safe
    set search_path = ''
    as $fn$
      select pg_catalog.encode(
        pg_catalog.set_bit(
          pg_catalog.set_bit(
            overlay(
              pg_catalog.uuid_send(pg_catalog.gen_random_uuid())
              placing substring(
                pg_catalog.int8send((extract(epoch from pg_catalog.clock_timestamp()) * 1000)::bigint)
                from 3
              )
              from 1 for 6
            ),
            52, 1
          ),
          53, 1
        ),
        'hex'
      )::uuid
    $fn$;
    revoke execute on function public.uuid_generate_v7() from public, anon;
    grant execute on function public.uuid_generate_v7() to authenticated, service_role;
  end if;
end
$v7$;

-- Columns this layer adds to the host tables (contract section 2).
alter table public.clients add column if not exists timezone text default 'UTC';
alter table public.clients add column if not exists als_learned_weights jsonb;
alter table public.clients add column if not exists als_weights_updated_at timestamptz;
alter table public.clients add column if not exists conversion_sample_count integer default 0;

alter table public.leads add column if not exists timezone text;
alter table public.leads add column if not exists converted_at timestamptz;
alter table public.leads add column if not exists als_components jsonb;
alter table public.leads add column if not exists als_weights_used jsonb;
alter table public.leads add column if not exists scored_at timestamptz;

alter table public.activities add column if not exists led_to_booking boolean default false;
alter table public.activities add column if not exists content_snapshot jsonb;

-- The converting-touch search: a lead's touches newest first.
create index if not exists activities_ci_lead_created_idx
on public.activities (lead_id, created_at desc, id desc);
-- Marked touches of a client (backfill, WHAT/HOW detectors).
create index if not exists activities_ci_booking_idx
on public.activities (client_id) where led_to_booking;
-- A client's leads by outcome.
create index if not exists leads_ci_client_status_idx
on public.leads (client_id, status) where deleted_at is null;

-- One row per client and pattern type: the patterns in force.
create table if not exists public.conversion_patterns (
  id uuid primary key default public.uuid_generate_v7(),
  client_id uuid not null references public.clients (id) on delete cascade,
  pattern_type text not null,
  patterns jsonb not null,
  sample_size integer not null,
  confidence double precision not null,
  computed_at timestamptz not null default pg_catalog.now(),
  valid_until timestamptz not null,
  created_at timestamptz not null default pg_catalog.now(),
  constraint unique_client_pattern_type unique (client_id, pattern_type),
  constraint conversion_patterns_type_check check (pattern_type in ('who', 'what', 'when', 'how')),
  constraint conversion_patterns_confidence_check check (confidence >= 0 and confidence <= 1),
  constraint conversion_patterns_sample_check check (sample_size >= 0),
  constraint conversion_patterns_valid_check check (valid_until >= computed_at),
  constraint conversion_patterns_object_check check (jsonb_typeof(patterns) = 'object')
);
-- (client_id, pattern_type) is served by the unique constraint's index.
create index if not exists idx_conversion_patterns_type on public.conversion_patterns (pattern_type);
create index if not exists idx_conversion_patterns_valid on public.conversion_patterns (valid_until);

-- Every computed pattern, append only.
create table if not exists public.conversion_pattern_history (
  id uuid primary key default public.uuid_generate_v7(),
  client_id uuid not null references public.clients (id) on delete cascade,
  pattern_type text not null,
  patterns jsonb not null,
  sample_size integer not null,
  confidence double precision,
  computed_at timestamptz not null default pg_catalog.now(),
  constraint conversion_pattern_history_type_check check (pattern_type in ('who', 'what', 'when', 'how')),
  constraint conversion_pattern_history_sample_check check (sample_size >= 0),
  constraint conversion_pattern_history_confidence_check check (confidence >= 0 and confidence <= 1),
  constraint conversion_pattern_history_object_check check (jsonb_typeof(patterns) = 'object')
);
create index if not exists idx_pattern_history_client
on public.conversion_pattern_history (client_id, pattern_type, computed_at desc);

-- History is append only, whoever asks (service_role bypasses RLS, not triggers).
-- The one exception: rows go with their client when the client row is deleted.
create or replace function ci_private.forbid_history_change()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if tg_op = 'DELETE' and not exists (select 1 from public.clients as c where c.id = old.client_id) then
    return old;
  end if;
  raise exception 'conversion_pattern_history is append only (% refused)', tg_op
    using errcode = 'insufficient_privilege';
end
$$;

drop trigger if exists conversion_pattern_history_append_only on public.conversion_pattern_history;
create trigger conversion_pattern_history_append_only
before update or delete on public.conversion_pattern_history
for each row execute function ci_private.forbid_history_change();

-- Row-level security: members read their clients' patterns; writes go through
-- the layer's functions (service_role or security definer), never direct.
alter table public.conversion_patterns enable row level security;
alter table public.conversion_pattern_history enable row level security;

revoke all on public.conversion_patterns from anon, authenticated;
revoke all on public.conversion_pattern_history from anon, authenticated;
grant select on public.conversion_patterns to authenticated;
grant select on public.conversion_pattern_history to authenticated;
grant all on public.conversion_patterns to service_role;
grant select, insert on public.conversion_pattern_history to service_role;

drop policy if exists conversion_patterns_member_read on public.conversion_patterns;
create policy conversion_patterns_member_read on public.conversion_patterns
for select to authenticated
using (client_id in (select ci_private.member_client_ids()));

drop policy if exists conversion_pattern_history_member_read on public.conversion_pattern_history;
create policy conversion_pattern_history_member_read on public.conversion_pattern_history
for select to authenticated
using (client_id in (select ci_private.member_client_ids()));
