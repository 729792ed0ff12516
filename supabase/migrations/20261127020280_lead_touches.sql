-- Each lead's outbound touches in send order, kept on write in
-- ci_private.lead_touches, so that a refresh reads them instead of numbering
-- every touch of the client again.
--
-- Why: the per-touch relation of the detectors (touches migration) needs each
-- touch's position, previous send, running channel set and channel sequence.
-- Rebuilt at every refresh from the outbound-touch index, numbering 5M
-- touches of a 1M-lead client cost about 30 s of a 40 s build; read from this
-- table, the build is the join to the leads, the local time and the write.
--
-- One row per outbound touch on a channel the detectors know, keyed by
-- (client, lead, touch_no: its position): the touch, its send time and
-- channel, the days since the lead's previous touch, the running channel mask
-- and channel sequence code (first ten channels, three bits each), its content
-- key and booking mark, and whether it is the lead's last touch so far. Lead
-- attributes (status, tier, zone) are not kept here: they change without a
-- touch, and are joined at refresh.
--
-- Kept by statement-level triggers on activities (insert, update, delete,
-- truncate) that recompute the rows of each lead a statement touched from the
-- outbound-touch index (a lead's touches are a handful of index entries); a
-- bulk statement recomputes each of its leads once. They fire also under
-- session_replication_role = replica (enable always): a logical-replication
-- or restore session writes through them too. Two concurrent writers of one
-- lead both land (recompute_lead_touches: the second reads the lead again
-- once the first has committed); the price is that two transactions sending
-- to the same two leads in opposite orders can deadlock, and PostgreSQL then
-- aborts one of them.
--
-- Built once per client: a client created after this layer is whole from the
-- start; the rows of one that had touches before are not there until
-- ci_private.rebuild_lead_touches builds it whole (and marks it in
-- ci_private.lead_touches_built). Every build of the per-touch relation runs
-- ci_private.ensure_lead_touches first, which rebuilds an unmarked client (a
-- marker lookup). After writes with the layer's triggers disabled, rebuild the
-- client, or run ensure_lead_touches(client, true), which compares its row
-- count with its count of outbound touches (a read of the client's outbound
-- touches) and rebuilds when they differ.

create table if not exists ci_private.lead_touches (
  client_id uuid not null,
  lead_id uuid not null,
  touch_no smallint not null,       -- 1.. in send order (created_at, id)
  touch_id uuid not null,           -- activities.id
  created_at timestamptz not null,
  channel smallint not null,        -- ci_private.channel_code
  gap_days real,                    -- days since the lead's previous touch
  channel_mask smallint not null,   -- channels of touches 1..touch_no, one bit each
  sequence_code integer not null,   -- channels of touches 1..touch_no (<= 10), 3 bits each, first lowest
  content_key integer,              -- activities.content_key
  led_to_booking boolean not null,
  is_last boolean not null,         -- the lead's last touch so far
  primary key (client_id, lead_id, touch_no)
);
-- Each lead's first kept touch: the WHO detector's as-of date
-- (ci_private.who_lead_counts) without reading the others.
create index if not exists lead_touches_first_idx
on ci_private.lead_touches (client_id, lead_id) include (created_at)
where touch_no = 1;
comment on table ci_private.lead_touches is
'Each lead''s outbound touches in send order with position, gap, channel set and sequence; kept by triggers on activities.';
-- Tenant data read and written only by the layer's security definer functions.
alter table ci_private.lead_touches enable row level security;
revoke all on ci_private.lead_touches from public, anon, authenticated, service_role;

-- The clients whose rows were built whole; the triggers keep them from then on.
create table if not exists ci_private.lead_touches_built (
  client_id uuid primary key references public.clients (id) on delete cascade,
  built_at timestamptz not null default pg_catalog.now(),
  touches integer not null
);
comment on table ci_private.lead_touches_built is
'Clients whose ci_private.lead_touches rows were built whole (rebuild_lead_touches), and when.';
alter table ci_private.lead_touches_built enable row level security;
revoke all on ci_private.lead_touches_built from public, anon, authenticated, service_role;

-- A new client has no touches yet: its rows are whole from the start.
-- security definer: the inserting role has no access to the layer's tables.
create or replace function ci_private.clients_lead_touches_built()
returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  insert into ci_private.lead_touches_built (client_id, touches) values (new.id, 0)
  on conflict (client_id) do nothing;
  return null;
end
$$;

drop trigger if exists clients_ci_lead_touches_built on public.clients;
create trigger clients_ci_lead_touches_built
after insert on public.clients
for each row execute function ci_private.clients_lead_touches_built();

-- Recompute the rows of the given leads (parallel arrays of client and lead
-- ids) from their outbound touches. Returns the number of rows written.
-- security definer: called by the activities triggers, whose writer (any
-- role the host uses) has no access to the layer's tables.
-- plan_cache_mode: the plans probe the index a lead at a time, right for one
-- lead or a million; with custom plans (a size guessed per call) each single
-- send paid about 2 ms of planning.
create or replace function ci_private.recompute_lead_touches(p_client_ids uuid [], p_lead_ids uuid [])
returns integer
language plpgsql volatile security definer
set search_path = ''
set plan_cache_mode = force_generic_plan
as $$
declare
  v_computed integer;
  v_written integer;
  v_rounds integer := 0;
begin
  -- A bulk statement holds its clients exclusively, a statement of a few
  -- leads holds them shared: bulk writers, which lock many leads' rows in no
  -- set order, never deadlock with each other or with single sends.
  if cardinality(p_lead_ids) <= 64 then
    perform pg_catalog.pg_advisory_xact_lock_shared(pg_catalog.hashtext('ci_lead_touches'), pg_catalog.hashtext(c.client_id::text))
    from (select distinct u.client_id from unnest(p_client_ids) as u (client_id) order by 1) as c;
  else
    perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('ci_lead_touches'), pg_catalog.hashtext(c.client_id::text))
    from (select distinct u.client_id from unnest(p_client_ids) as u (client_id) order by 1) as c;
  end if;

  loop
    v_rounds := v_rounds + 1;
    -- Two writers of one lead: the delete waits for the other writer's delete
    -- of the same rows, and the insert below, a new statement, then reads the
    -- lead's touches as that writer committed them.
    delete from ci_private.lead_touches as t
    using (select distinct u.client_id, u.lead_id from unnest(p_client_ids, p_lead_ids) as u (client_id, lead_id)) as k
    where t.client_id = k.client_id and t.lead_id = k.lead_id;

    with computed as (
      select
        k.client_id, k.lead_id, w.rn::smallint as touch_no, w.id, w.created_at, w.channel,
        (date_part('epoch', w.created_at - w.prev_at) / 86400)::real as gap_days,
        w.channel_mask, w.sequence_code, w.content_key, w.led_to_booking, w.next_at is null as is_last
      from (select distinct u.client_id, u.lead_id from unnest(p_client_ids, p_lead_ids) as u (client_id, lead_id)) as k
      cross join lateral (
        -- The running mask and sequence code need the position: a second pass.
        select
          p.*,
          bit_or((1 << (p.channel - 1))::smallint) over w as channel_mask,
          bit_or(case when p.rn <= 10 then p.channel::integer << (3 * (p.rn::integer - 1)) else 0 end) over w as sequence_code
        from (
          select
            a.id,
            a.created_at,
            ci_private.channel_code(a.channel) as channel,
            a.content_key,
            coalesce(a.led_to_booking, false) as led_to_booking,
            row_number() over t as rn,
            lag(a.created_at) over t as prev_at,
            lead(a.created_at) over t as next_at
          from public.activities as a
          where a.client_id = k.client_id
            and a.lead_id = k.lead_id
            and ci_private.is_outbound_action(a.action)
            and ci_private.channel_code(a.channel) is not null
          window t as (order by a.created_at, a.id)
        ) as p
        window w as (order by p.created_at, p.id rows between unbounded preceding and current row)
      ) as w
    ),

    written as (
      insert into ci_private.lead_touches (
        client_id, lead_id, touch_no, touch_id, created_at, channel, gap_days, channel_mask, sequence_code,
        content_key, led_to_booking, is_last
      )
      select * from computed
      on conflict do nothing
      returning 1
    )

    select (select count(*) from computed), (select count(*) from written) into v_computed, v_written;
    -- When another writer's rows were not there to delete (a lead's first
    -- touches, or rows it wrote after this delete), the insert waited for it
    -- and skipped the rows it holds: it has committed now; read the lead again.
    exit when v_written = v_computed or v_rounds >= 5;
  end loop;
  return v_written;
end
$$;

-- Rebuild every row of a client from its outbound touches and mark the
-- client built. Returns the number of rows written.
-- security definer: a repair run by the refresh (which has checked access)
-- or by an operator; it writes only the layer's own tables.
create or replace function ci_private.rebuild_lead_touches(p_client_id uuid)
returns integer
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_leads uuid [];
  v_written integer := 0;
begin
  select array_agg(k.lead_id) into v_leads
  from (
    select a.lead_id from public.activities as a
    where a.client_id = p_client_id and ci_private.is_outbound_action(a.action)
    union
    select t.lead_id from ci_private.lead_touches as t where t.client_id = p_client_id
  ) as k;
  if v_leads is not null then
    v_written := ci_private.recompute_lead_touches(array_fill(p_client_id, array[cardinality(v_leads)]), v_leads);
  end if;
  insert into ci_private.lead_touches_built as b (client_id, built_at, touches)
  select c.id, pg_catalog.now(), v_written from public.clients as c where c.id = p_client_id
  on conflict (client_id) do update set built_at = excluded.built_at, touches = excluded.touches;
  return v_written;
end
$$;

-- Build a client's rows unless it was built before; with p_verify, also
-- rebuild when its rows are not as many as its outbound touches on known
-- channels (writes with the triggers disabled). Returns the number of rows
-- rebuilt, 0 when nothing was.
-- security definer: as rebuild_lead_touches.
create or replace function ci_private.ensure_lead_touches(p_client_id uuid, p_verify boolean default false)
returns integer
language plpgsql volatile security definer
set search_path = ''
as $$
begin
  if not exists (select 1 from ci_private.lead_touches_built as b where b.client_id = p_client_id) then
    return ci_private.rebuild_lead_touches(p_client_id);
  end if;
  if not p_verify or (
    select count(*) from public.activities as a
    where a.client_id = p_client_id
      and ci_private.is_outbound_action(a.action)
      and ci_private.channel_code(a.channel) is not null
  ) = (
    select count(*) from ci_private.lead_touches as t where t.client_id = p_client_id
  ) then
    return 0;
  end if;
  return ci_private.rebuild_lead_touches(p_client_id);
end
$$;

-- After insert into or delete from activities: recompute the leads whose
-- outbound touches the statement added or removed (its transition table is
-- named changed_rows in both triggers).
-- security definer: as recompute_lead_touches.
create or replace function ci_private.activities_lead_touches_changed()
returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  v_clients uuid [];
  v_leads uuid [];
begin
  select array_agg(n.client_id), array_agg(n.lead_id) into v_clients, v_leads
  from (
    select distinct r.client_id, r.lead_id from changed_rows as r where ci_private.is_outbound_action(r.action)
  ) as n;
  if v_leads is not null then
    perform ci_private.recompute_lead_touches(v_clients, v_leads);
  end if;
  return null;
end
$$;

-- After update of activities: recompute the leads of outbound touches whose
-- lead, client, send time, action, channel, booking mark or content key
-- changed (before and after: a touch can move between leads).
-- security definer: as recompute_lead_touches.
create or replace function ci_private.activities_lead_touches_upd()
returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  v_clients uuid [];
  v_leads uuid [];
begin
  select array_agg(n.client_id), array_agg(n.lead_id) into v_clients, v_leads
  from (
    select distinct x.client_id, x.lead_id
    from old_rows as o
    inner join new_rows as r on r.id = o.id
    cross join lateral (values (o.client_id, o.lead_id, o.action), (r.client_id, r.lead_id, r.action)) as x (client_id, lead_id, action)
    where ci_private.is_outbound_action(x.action)
      and (o.client_id, o.lead_id, o.created_at, o.action, o.channel, o.led_to_booking, o.content_key)
      is distinct from (r.client_id, r.lead_id, r.created_at, r.action, r.channel, r.led_to_booking, r.content_key)
  ) as n;
  if v_leads is not null then
    perform ci_private.recompute_lead_touches(v_clients, v_leads);
  end if;
  return null;
end
$$;

-- After truncate of activities: no touches remain (the clients stay built).
-- security definer: as recompute_lead_touches.
create or replace function ci_private.activities_lead_touches_truncate()
returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  truncate ci_private.lead_touches;
  return null;
end
$$;

drop trigger if exists activities_ci_lead_touches_ins on public.activities;
create trigger activities_ci_lead_touches_ins
after insert on public.activities
referencing new table as changed_rows
for each statement execute function ci_private.activities_lead_touches_changed();

drop trigger if exists activities_ci_lead_touches_del on public.activities;
create trigger activities_ci_lead_touches_del
after delete on public.activities
referencing old table as changed_rows
for each statement execute function ci_private.activities_lead_touches_changed();

drop trigger if exists activities_ci_lead_touches_upd on public.activities;
create trigger activities_ci_lead_touches_upd
after update on public.activities
referencing old table as old_rows new table as new_rows
for each statement execute function ci_private.activities_lead_touches_upd();

drop trigger if exists activities_ci_lead_touches_truncate on public.activities;
create trigger activities_ci_lead_touches_truncate
after truncate on public.activities
for each statement execute function ci_private.activities_lead_touches_truncate();

alter table public.activities enable always trigger activities_ci_lead_touches_ins;
alter table public.activities enable always trigger activities_ci_lead_touches_del;
alter table public.activities enable always trigger activities_ci_lead_touches_upd;
alter table public.activities enable always trigger activities_ci_lead_touches_truncate;

revoke execute on function ci_private.recompute_lead_touches(uuid [], uuid []) from public, anon, authenticated;
revoke execute on function ci_private.rebuild_lead_touches(uuid) from public, anon, authenticated;
revoke execute on function ci_private.ensure_lead_touches(uuid, boolean) from public, anon, authenticated;
revoke execute on function ci_private.activities_lead_touches_changed() from public, anon, authenticated;
revoke execute on function ci_private.activities_lead_touches_upd() from public, anon, authenticated;
revoke execute on function ci_private.activities_lead_touches_truncate() from public, anon, authenticated;
revoke execute on function ci_private.clients_lead_touches_built() from public, anon, authenticated;
grant execute on function ci_private.rebuild_lead_touches(uuid) to service_role;
grant execute on function ci_private.ensure_lead_touches(uuid, boolean) to service_role;
