-- History is the truth (contract section 3, issue 13): the converting-touch
-- mark (activities.led_to_booking), the kept per-lead touches
-- (ci_private.lead_touches) and each lead's conversion state (status,
-- converted_at) follow every write path of the host: inserts in any order,
-- updates of time, action or lead (a merge: delete from one lead, insert for
-- the other), deletes, replica-mode sessions, and (through the reconciliation
-- that every refresh runs first) concurrent transactions. The derivation is
-- written once (ci_private.derive_conversions and ci_private.remark_leads) and
-- used by the triggers for the leads a statement touched and by
-- ci_private.reconcile_client_conversions for a whole client.
--
-- The state, as a function of history (docs/conversions.md has the oracle):
--   S  the status path's conversion time: set when a writer makes the lead
--      converted (its own converted_at, else the time of the change) or
--      re-times a converted lead; cleared when a writer takes the lead out of
--      'converted'. Kept in ci_private.lead_conversion_status (written only on
--      lead updates; a lead inserted converted, or converted before this
--      migration, has no row and its S is read from the lead: converted_at,
--      unless a booking activity at exactly that time explains it).
--   U  when a writer last took the lead out of 'converted' (the later of that
--      time and its latest booking so far): bookings at or before U are
--      overruled by that un-conversion, later ones convert again.
--   B  the earliest booking activity (meeting_booked / converted) of the lead
--      (same client, finite time) after U.
--   A lead that is not soft-deleted is converted when S or B is set, at
--   least(S, B); otherwise it is not converted, and a lead that the history no
--   longer converts (its booking deleted, re-timed before an un-conversion,
--   moved to another lead) goes back to 'in_sequence'. A soft-deleted lead's
--   state is left as its writers left it (bookings convert nothing).
--   The mark: the last outbound touch with a finite time at or before
--   converted_at (ties: the greater id); none on any other lead. Touches with
--   a non-finite created_at are accepted and left out (never marked, not
--   kept in lead_touches, a booking at such a time converts nothing).
--
-- Writes by the layer itself carry the transaction-local setting
-- ci.deriving = on, so that the lead and activity triggers know them from the
-- host's (they pass them through instead of deriving again).

-- The status path of each lead whose status a writer changed (see above).
create table if not exists ci_private.lead_conversion_status (
  lead_id uuid primary key references public.leads (id) on delete cascade,
  client_id uuid not null,
  status_converted_at timestamptz,
  unconverted_at timestamptz,
  updated_at timestamptz not null default pg_catalog.now()
);
create index if not exists lead_conversion_status_client_idx on ci_private.lead_conversion_status (client_id);
comment on table ci_private.lead_conversion_status is
'Status path of a lead''s conversion: the time a writer converted it (status) and when a writer last un-converted it.';
alter table ci_private.lead_conversion_status enable row level security;
revoke all on ci_private.lead_conversion_status from public, anon, authenticated, service_role;

-- Erasure: a content key is deleted with the last activity that uses it; this
-- index finds whether any activity still does (one probe per key).
create index if not exists activities_ci_content_key_idx
on public.activities (content_key) where content_key is not null;

-- A lead's marked activities (normally one), for re-marking a lead. Its
-- predicate is written so that the booking index (by client, where
-- led_to_booking) cannot serve the query: with statistics taken before a bulk
-- of conversions the planner took that one, reading every mark of the table
-- to find one lead's. Tiny: only marked rows are in it.
create index if not exists activities_ci_lead_mark_idx
on public.activities (lead_id) where coalesce(led_to_booking, false);

-- Whether the layer itself is writing (see the header).
create or replace function ci_private.is_deriving()
returns boolean
language sql stable
as $$
  select coalesce(pg_catalog.current_setting('ci.deriving', true), '') = 'on'
$$;

-- Re-derive the mark of each given lead from its history: set it on the
-- converting touch, clear it everywhere else on those leads. With a client,
-- the marked touches of the whole client are also cleared where they are not
-- a converting touch. Returns the marks added and removed.
-- security definer: the mark is the layer's bookkeeping; the writer of a lead
-- or an activity need not be allowed to update activities.
create or replace function ci_private.remark_leads(
  p_lead_ids uuid [], p_client_id uuid default null, out added integer, out removed integer
)
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_prev text := pg_catalog.current_setting('ci.deriving', true);
  v_target uuid [];
  v_change uuid [];
begin
  perform pg_catalog.set_config('ci.deriving', 'on', true);
  if p_client_id is null then
    -- The triggers' path, a few leads: index probes by id and by lead.
    select coalesce(array_agg(t.id), '{}'::uuid []) into v_target
    from public.leads as l
    cross join lateral (
      select a.id
      from public.activities as a
      where a.lead_id = l.id
        and a.client_id = l.client_id
        and ci_private.is_outbound_action(a.action)
        and a.created_at > '-infinity'::timestamptz
        and a.created_at < 'infinity'::timestamptz
        and a.created_at <= l.converted_at
      order by a.created_at desc, a.id desc
      limit 1
    ) as t
    where l.id = any(p_lead_ids) and l.status::text = 'converted' and l.converted_at is not null;

    -- The rows to change first (index probes), then one update of just
    -- those, only when there are any: one firing of the activities'
    -- statement trigger, none when the mark stays where it is.
    v_change := array(
      select a.id from public.activities as a
      where a.id = any(v_target) and a.led_to_booking is not true
      union all
      select m.id
      from unnest(p_lead_ids) as u (id)
      cross join lateral (
        select a.id from public.activities as a
        where a.lead_id = u.id and coalesce(a.led_to_booking, false) and not (a.id = any(v_target))
      ) as m
    );
    added := 0;
    removed := 0;
    if cardinality(v_change) > 0 then
      with changed as (
        update public.activities as a
        set led_to_booking = (a.id = any(v_target))
        where a.id = any(v_change)
        returning a.led_to_booking
      )

      select
        count(*) filter (where c.led_to_booking)::integer,
        count(*) filter (where not c.led_to_booking)::integer
      into added, removed
      from changed as c;
    end if;
  else
    -- A whole client (the reconciliation): set-based joins.
    with k as (
      select distinct u.id from unnest(p_lead_ids) as u (id) where u.id is not null
    ),

    target as (
      select t.id
      from k
      inner join public.leads as l on k.id = l.id
      cross join lateral (
        select a.id
        from public.activities as a
        where a.lead_id = l.id
          and a.client_id = l.client_id
          and ci_private.is_outbound_action(a.action)
          and a.created_at > '-infinity'::timestamptz
          and a.created_at < 'infinity'::timestamptz
          and a.created_at <= l.converted_at
        order by a.created_at desc, a.id desc
        limit 1
      ) as t
      where l.status::text = 'converted' and l.converted_at is not null
    ),

    marked as (
      select a.id
      from public.activities as a
      where a.client_id = p_client_id and a.led_to_booking
      union
      select a.id
      from k
      inner join public.activities as a on k.id = a.lead_id
      where a.led_to_booking
    ),

    wanted as (
      select t.id, true as mark from target as t
      union all
      select m.id, false from marked as m where m.id not in (select t.id from target as t)
    ),

    changed as (
      update public.activities as a
      set led_to_booking = w.mark
      from wanted as w
      where a.id = w.id and a.led_to_booking is distinct from w.mark
      returning w.mark
    )

    select
      count(*) filter (where c.mark)::integer,
      count(*) filter (where not c.mark)::integer
    into added, removed
    from changed as c;
  end if;
  perform pg_catalog.set_config('ci.deriving', coalesce(v_prev, ''), true);
end
$$;

-- Re-derive the conversion state (status, converted_at) of the given leads
-- from their history (see the header), then their marks. p_lock: lock the
-- leads first (in id order), for the triggers, so that a concurrent status
-- change and a booking are applied one after the other; without it (the
-- reconciliation of a whole client) a lead that a writer changes meanwhile is
-- left to that writer and to the next reconciliation. Returns the counts.
-- security definer: as remark_leads.
create or replace function ci_private.derive_conversions(
  p_lead_ids uuid [], p_lock boolean default true, p_client_id uuid default null
)
returns jsonb
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_prev text := pg_catalog.current_setting('ci.deriving', true);
  v_converted integer;
  v_unconverted integer;
  v_retimed integer;
  v_marks record;
begin
  perform pg_catalog.set_config('ci.deriving', 'on', true);
  if p_lock then
    perform 1 from public.leads as l
    where l.id in (select u.id from unnest(p_lead_ids) as u (id))
    order by l.id
    -- Not FOR UPDATE: a writer's new activity (which takes KEY SHARE on its
    -- lead) must not wait for a conversion, nor a conversion for it.
    for no key update;
  end if;

  with k as (
    select distinct u.id from unnest(p_lead_ids) as u (id) where u.id is not null
  ),

  cur as (
    select
      l.id, l.client_id, l.status::text as status, l.converted_at, l.updated_at,
      r.lead_id is not null as pinned, r.status_converted_at, r.unconverted_at
    from k
    inner join public.leads as l on k.id = l.id
    left join ci_private.lead_conversion_status as r on l.id = r.lead_id
    where l.deleted_at is null
  ),

  calc as (
    select
      c.*,
      b.first_booking,
      case
        when c.pinned then c.status_converted_at
        when c.status = 'converted' and c.converted_at is null then coalesce(c.updated_at, pg_catalog.now())
        when c.status = 'converted' and not exists (
          select 1 from public.activities as e
          where e.lead_id = c.id and e.client_id = c.client_id
            and ci_private.is_conversion_action(e.action)
            and e.created_at = c.converted_at
            and e.created_at > coalesce(c.unconverted_at, '-infinity'::timestamptz)
        ) then c.converted_at
      end as s
    from cur as c
    cross join lateral (
      select min(a.created_at) as first_booking
      from public.activities as a
      where a.lead_id = c.id
        and a.client_id = c.client_id
        and ci_private.is_conversion_action(a.action)
        and a.created_at > coalesce(c.unconverted_at, '-infinity'::timestamptz)
        and a.created_at < 'infinity'::timestamptz
    ) as b
  ),

  want as (
    select
      x.*,
      (x.s is not null or x.first_booking is not null) as want_converted,
      least(x.s, x.first_booking) as want_at
    from calc as x
  ),

  diff as (
    select w.*
    from want as w
    where (w.status = 'converted') is distinct from w.want_converted
      or (w.want_converted and w.converted_at is distinct from w.want_at)
  ),

  upd as (
    update public.leads as l
    set
      status = case when d.want_converted then 'converted' else 'in_sequence' end::public.lead_status,
      converted_at = d.want_at
    from diff as d
    where l.id = d.id
      -- Unchanged since it was read: a lead a writer changed meanwhile is theirs.
      and l.status::text = d.status
      and l.converted_at is not distinct from d.converted_at
    returning d.id, d.client_id, d.s, d.unconverted_at, d.pinned, d.status, d.want_converted
  ),

  pin as (
    -- A lead whose state the layer changed keeps its status path as it was
    -- read (so a booking that converted it is not taken for the status path).
    insert into ci_private.lead_conversion_status (lead_id, client_id, status_converted_at, unconverted_at)
    select u.id, u.client_id, u.s, u.unconverted_at from upd as u where not u.pinned
    on conflict (lead_id) do nothing
  )

  select
    count(*) filter (where u.status is distinct from 'converted' and u.want_converted)::integer,
    count(*) filter (where u.status = 'converted' and not u.want_converted)::integer,
    count(*) filter (where u.status = 'converted' and u.want_converted)::integer
  into v_converted, v_unconverted, v_retimed
  from upd as u;

  select * into v_marks from ci_private.remark_leads(p_lead_ids, p_client_id);
  perform pg_catalog.set_config('ci.deriving', coalesce(v_prev, ''), true);
  return jsonb_build_object(
    'leads_converted', v_converted,
    'leads_unconverted', v_unconverted,
    'leads_retimed', v_retimed,
    'marks_added', v_marks.added,
    'marks_removed', v_marks.removed
  );
end
$$;

-- Kept for callers of the single-lead form: the mark of one lead.
-- security definer: as remark_leads.
create or replace function ci_private.mark_converting_touch(p_lead_id uuid)
returns void
language plpgsql volatile security definer
set search_path = ''
as $$
begin
  perform ci_private.remark_leads(array[p_lead_id]);
end
$$;

-- Before a lead row is written by a writer other than the layer: keep
-- converted_at consistent with status, record the status path (S, U) and
-- apply the earliest booking after the last un-conversion.
-- security definer: writes the layer's own lead_conversion_status.
create or replace function ci_private.leads_conversion_time()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_unconverted_at timestamptz;
  v_has_row boolean;
  v_booking timestamptz;
  v_latest timestamptz;
begin
  if ci_private.is_deriving() then
    return new;
  end if;
  if tg_op = 'INSERT' then
    -- A new lead has no bookings: its state is the writer's (S = converted_at,
    -- read from the lead itself; no status row needed).
    if new.status::text = 'converted' then
      new.converted_at := coalesce(new.converted_at, pg_catalog.now());
    else
      new.converted_at := null;
    end if;
    return new;
  end if;

  select r.unconverted_at into v_unconverted_at
  from ci_private.lead_conversion_status as r where r.lead_id = new.id;
  v_has_row := found;
  select
    min(a.created_at) filter (where a.created_at > coalesce(v_unconverted_at, '-infinity'::timestamptz)),
    max(a.created_at)
  into v_booking, v_latest
  from public.activities as a
  where a.lead_id = new.id
    and a.client_id = new.client_id
    and ci_private.is_conversion_action(a.action)
    and a.created_at > '-infinity'::timestamptz
    and a.created_at < 'infinity'::timestamptz;
  if new.deleted_at is not null then
    v_booking := null;
  end if;

  if new.status::text = 'converted' then
    if old.status::text is distinct from 'converted' then
      -- Newly converted: the writer's own converted_at (a backfill) wins.
      if new.converted_at is null or new.converted_at is not distinct from old.converted_at then
        new.converted_at := pg_catalog.now();
      end if;
    elsif new.converted_at is null then
      -- Still converted: a converted lead keeps a conversion time.
      new.converted_at := old.converted_at;
    end if;
    -- S is recorded only where the lead cannot tell it: a row exists already
    -- (an earlier un-conversion), or a booking at or before S (which would
    -- move converted_at off S, or explain it). Otherwise S = converted_at,
    -- which is how a lead without a row is read.
    if v_has_row or v_booking <= new.converted_at then
      insert into ci_private.lead_conversion_status as r (lead_id, client_id, status_converted_at, unconverted_at)
      values (new.id, new.client_id, new.converted_at, v_unconverted_at)
      on conflict (lead_id) do update
        set status_converted_at = excluded.status_converted_at, updated_at = pg_catalog.now();
    end if;
    -- An earlier booking than the status path's time: the earliest wins.
    new.converted_at := least(new.converted_at, v_booking);
  else
    new.converted_at := null;
    if old.status::text = 'converted' then
      -- Un-converted by a writer: every booking recorded so far is overruled.
      insert into ci_private.lead_conversion_status as r (lead_id, client_id, status_converted_at, unconverted_at)
      values (new.id, new.client_id, null, greatest(pg_catalog.now(), v_latest))
      on conflict (lead_id) do update
        set status_converted_at = null, unconverted_at = excluded.unconverted_at, updated_at = pg_catalog.now();
    end if;
  end if;
  return new;
end
$$;

-- After a lead's conversion state changed (by a writer), move its mark.
-- security definer: as remark_leads.
create or replace function ci_private.leads_mark_converting_touch()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if not ci_private.is_deriving() then
    perform ci_private.remark_leads(array[new.id]);
  end if;
  return null;
end
$$;

-- A booking activity's lead must exist and belong to the activity's client
-- (the checks of the former row trigger, now over a statement's rows).
create or replace function ci_private.check_booking_rows(p_rows jsonb)
returns void
language plpgsql stable
set search_path = ''
as $$
declare
  v_bad record;
begin
  select r.id, r.client_id, r.lead_id, l.id as found_id, l.client_id as lead_client_id into v_bad
  from jsonb_to_recordset(p_rows) as r (id uuid, client_id uuid, lead_id uuid)
  left join public.leads as l on r.lead_id = l.id
  where r.lead_id is null or l.id is null or l.client_id is distinct from r.client_id
  limit 1;
  if not found then
    return;
  end if;
  if v_bad.lead_id is null then
    raise exception 'booking activity % has no lead', v_bad.id using errcode = 'not_null_violation';
  elsif v_bad.found_id is null then
    raise exception 'booking activity % refers to unknown lead %', v_bad.id, v_bad.lead_id
      using errcode = 'foreign_key_violation';
  end if;
  raise exception 'booking activity % is for client % but lead % belongs to client %',
    v_bad.id, v_bad.client_id, v_bad.lead_id, v_bad.lead_client_id
    using errcode = 'check_violation';
end
$$;

-- After insert into or delete from activities (transition table changed_rows):
-- keep the leads' touches, then re-derive the leads whose bookings changed and
-- re-mark the converted leads whose outbound touches changed; on delete, erase
-- the content keys no activity uses any more.
-- security definer: the host's writers have no access to the layer's tables.
create or replace function ci_private.activities_lead_touches_changed()
returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  v_clients uuid [];
  v_leads uuid [];
  v_bookings uuid [];
  v_marked uuid [];
  v_remark uuid [];
begin
  select array_agg(n.client_id), array_agg(n.lead_id) into v_clients, v_leads
  from (
    select distinct r.client_id, r.lead_id from changed_rows as r where ci_private.is_outbound_action(r.action)
  ) as n;
  if v_leads is not null then
    perform ci_private.recompute_lead_touches(v_clients, v_leads);
  end if;

  if not ci_private.is_deriving() then
    select
      array_agg(distinct r.lead_id) filter (where ci_private.is_conversion_action(r.action)),
      array_agg(distinct r.lead_id) filter (where r.led_to_booking)
    into v_bookings, v_marked
    from changed_rows as r
    where ci_private.is_conversion_action(r.action) or r.led_to_booking;
    if v_bookings is not null then
      if tg_op = 'INSERT' then
        perform ci_private.check_booking_rows((
          select jsonb_agg(jsonb_build_object('id', r.id, 'client_id', r.client_id, 'lead_id', r.lead_id))
          from changed_rows as r where ci_private.is_conversion_action(r.action)
        ));
      end if;
      perform ci_private.derive_conversions(v_bookings);
    end if;
    if v_leads is not null then
      -- Touches of converted leads (the mark may move), and leads given a
      -- mark by the writer (history decides it).
      v_remark := array(
        select l.id
        from public.leads as l
        where l.id in (select u.id from unnest(v_leads) as u (id))
          and (l.status::text = 'converted' or l.id = any(v_marked))
          and l.id <> all(coalesce(v_bookings, '{}'::uuid []))
      );
      if cardinality(v_remark) > 0 then
        perform ci_private.remark_leads(v_remark);
      end if;
    end if;
  end if;

  if tg_op = 'DELETE' then
    delete from ci_private.content_keys as k
    where k.key in (select r.content_key from changed_rows as r where r.content_key is not null)
      and not exists (select 1 from public.activities as a where a.content_key = k.key);
  end if;
  return null;
end
$$;

-- After update of activities: keep the touches of the leads whose outbound
-- touches changed (the layer's own change of a mark is copied, not
-- recomputed), then re-derive the leads (old and new: a merge moves an
-- activity between leads) whose bookings changed lead, client, time or
-- action, and re-mark those whose outbound touches did (or whose mark a writer
-- set by hand); erase content keys no activity uses any more. One pass over
-- the statement's rows.
-- security definer: as activities_lead_touches_changed.
create or replace function ci_private.activities_lead_touches_upd()
returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  v_deriving boolean := ci_private.is_deriving();
  v_clients uuid [];
  v_leads uuid [];
  v_bookings uuid [];
  v_remark uuid [];
  v_keys integer [];
  v_copy boolean;
begin
  if v_deriving then
    -- The layer's own writes change marks only: copy them into the kept rows.
    update ci_private.lead_touches as t
    set led_to_booking = coalesce(r.led_to_booking, false)
    from new_rows as r
    where t.client_id = r.client_id and t.lead_id = r.lead_id and t.touch_id = r.id
      and t.led_to_booking is distinct from coalesce(r.led_to_booking, false);
    return null;
  end if;
  -- Most updates change nothing the layer keeps (a subject, a status of the
  -- host's own): one pass over the rows, and out.
  -- (An aggregate, not EXISTS: a fast-start plan would join the two
  -- transition tables by a nested loop.)
  if (
    select count(*)
    from old_rows as o
    inner join new_rows as r on o.id = r.id
    where (o.client_id, o.lead_id, o.created_at, o.action, o.channel, o.content_key, o.led_to_booking)
      is distinct from (r.client_id, r.lead_id, r.created_at, r.action, r.channel, r.content_key, r.led_to_booking)
  ) = 0 then
    return null;
  end if;

  with j as (
    select
      o.id, o.client_id as oc, o.lead_id as ol, o.action as oa, r.client_id as rc, r.lead_id as rl, r.action as ra,
      (o.client_id, o.lead_id, o.created_at, o.action) is distinct from (r.client_id, r.lead_id, r.created_at, r.action)
      as moved,
      (o.channel, o.content_key) is distinct from (r.channel, r.content_key) as content_changed,
      o.led_to_booking is distinct from r.led_to_booking as mark_changed,
      o.content_key as old_key,
      r.content_key as new_key
    from old_rows as o
    inner join new_rows as r on o.id = r.id
  ),

  x as (
    select
      v.client_id, v.lead_id, v.action, j.moved, j.content_changed, j.mark_changed
    from j
    cross join lateral (values (j.oc, j.ol, j.oa), (j.rc, j.rl, j.ra)) as v (client_id, lead_id, action)
    where j.moved or j.content_changed or j.mark_changed
  ),

  t as (
    select distinct x.client_id, x.lead_id
    from x
    where ci_private.is_outbound_action(x.action) and (x.moved or x.content_changed or (x.mark_changed and not v_deriving))
  )

  select
    (select array_agg(t.client_id) from t),
    (select array_agg(t.lead_id) from t),
    (select array_agg(distinct x.lead_id) from x where x.moved and ci_private.is_conversion_action(x.action)),
    (
      select array_agg(distinct x.lead_id) from x
      where (x.moved and ci_private.is_outbound_action(x.action)) or x.mark_changed
    ),
    (select array_agg(distinct j.old_key) from j where j.old_key is not null and j.old_key is distinct from j.new_key),
    (select bool_or(x.mark_changed and not x.moved and not x.content_changed) from x)
  into v_clients, v_leads, v_bookings, v_remark, v_keys, v_copy;

  if v_leads is not null then
    perform ci_private.recompute_lead_touches(v_clients, v_leads);
  end if;
  if v_deriving and v_copy then
    -- The layer moved a mark: copy it into the kept row.
    update ci_private.lead_touches as t
    set led_to_booking = coalesce(r.led_to_booking, false)
    from new_rows as r
    where t.client_id = r.client_id and t.lead_id = r.lead_id and t.touch_id = r.id
      and t.led_to_booking is distinct from coalesce(r.led_to_booking, false);
  end if;

  if not v_deriving then
    if v_bookings is not null then
      perform ci_private.check_booking_rows((
        select jsonb_agg(jsonb_build_object('id', r.id, 'client_id', r.client_id, 'lead_id', r.lead_id))
        from new_rows as r where ci_private.is_conversion_action(r.action)
      ));
      perform ci_private.derive_conversions(v_bookings);
    end if;
    if v_remark is not null then
      v_remark := array(
        select u.id from unnest(v_remark) as u (id)
        where u.id <> all(coalesce(v_bookings, '{}'::uuid []))
      );
      if cardinality(v_remark) > 0 then
        perform ci_private.remark_leads(v_remark);
      end if;
    end if;
  end if;

  if v_keys is not null then
    delete from ci_private.content_keys as k
    where k.key = any(v_keys)
      and not exists (select 1 from public.activities as a where a.content_key = k.key);
  end if;
  return null;
end
$$;

-- Recompute the kept rows of the given leads from their outbound touches with
-- a finite send time (a touch at +/-infinity is left out). As before otherwise
-- (lead_touches migration): returns the number of rows written.
-- security definer: called by the activities triggers, whose writer (any
-- role the host uses) has no access to the layer's tables.
-- plan_cache_mode: the plans probe the index a lead at a time, right for one
-- lead or a million; with custom plans each single send paid about 2 ms of planning.
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
            and a.created_at > '-infinity'::timestamptz
            and a.created_at < 'infinity'::timestamptz
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
    exit when v_written = v_computed or v_rounds >= 5;
  end loop;
  return v_written;
end
$$;

-- Build a client's rows unless it was built before; with p_verify, also
-- rebuild when its rows are not as many as its outbound touches on known
-- channels with a finite time. Returns the number of rows rebuilt.
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
      and a.created_at > '-infinity'::timestamptz
      and a.created_at < 'infinity'::timestamptz
      and ci_private.channel_code(a.channel) is not null
  ) = (
    select count(*) from ci_private.lead_touches as t where t.client_id = p_client_id
  ) then
    return 0;
  end if;
  return ci_private.rebuild_lead_touches(p_client_id);
end
$$;

-- Re-derive a client's conversions, marks and kept touches from its history
-- in one set-based pass; returns what it corrected:
--   leads_converted / leads_unconverted / leads_retimed (converted_at moved),
--   marks_added / marks_removed, lead_touches_leads (leads whose kept rows
--   differed from their touches and were rebuilt) and lead_touches_rows (rows
--   written for them).
-- The kept rows are compared per lead by a fingerprint (count, send times,
-- touch ids, marked touch ids) read from the outbound-touch index.
-- security definer: a repair over one client's rows, run by the refresh (which
-- has checked the caller) or by service_role.
create or replace function ci_private.reconcile_client_conversions(p_client_id uuid)
returns jsonb
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_leads uuid [];
  v_result jsonb;
  v_touch_leads uuid [];
  v_rows integer := 0;
begin
  if p_client_id is null then
    raise exception 'reconcile_client_conversions: client id is null' using errcode = 'null_value_not_allowed';
  end if;
  -- One reconciliation of a client at a time (a refresh holds its own lock too).
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('ci_reconcile'), pg_catalog.hashtext(p_client_id::text));

  select array_agg(l.id) into v_leads from public.leads as l where l.client_id = p_client_id;
  v_result := ci_private.derive_conversions(coalesce(v_leads, '{}'::uuid []), false, p_client_id);

  perform ci_private.ensure_lead_touches(p_client_id);
  with want as (
    select
      a.lead_id,
      count(*) as n,
      sum(date_part('epoch', a.created_at)) as t,
      sum(pg_catalog.hashtext(a.id::text)::bigint) as h,
      sum(pg_catalog.hashtext(a.id::text)::bigint) filter (where a.led_to_booking) as m
    from public.activities as a
    where a.client_id = p_client_id
      and ci_private.is_outbound_action(a.action)
      and a.created_at > '-infinity'::timestamptz
      and a.created_at < 'infinity'::timestamptz
      and ci_private.channel_code(a.channel) is not null
    group by a.lead_id
  ),

  kept as (
    select
      t.lead_id,
      count(*) as n,
      sum(date_part('epoch', t.created_at)) as t,
      sum(pg_catalog.hashtext(t.touch_id::text)::bigint) as h,
      sum(pg_catalog.hashtext(t.touch_id::text)::bigint) filter (where t.led_to_booking) as m
    from ci_private.lead_touches as t
    where t.client_id = p_client_id
    group by t.lead_id
  )

  select array_agg(coalesce(w.lead_id, k.lead_id)) into v_touch_leads
  from want as w
  full join kept as k on w.lead_id = k.lead_id
  where (w.n, w.t, w.h, w.m) is distinct from (k.n, k.t, k.h, k.m);
  if v_touch_leads is not null then
    v_rows := ci_private.recompute_lead_touches(
      array_fill(p_client_id, array[cardinality(v_touch_leads)]), v_touch_leads
    );
  end if;

  return v_result || jsonb_build_object(
    'lead_touches_leads', coalesce(cardinality(v_touch_leads), 0),
    'lead_touches_rows', v_rows
  );
end
$$;

-- Re-derive every mark of a client from its history (the former backfill,
-- now the reconciliation). Returns the number of activities whose mark changed.
-- security definer: as reconcile_client_conversions.
create or replace function ci_private.backfill_converting_touches(p_client_id uuid)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_result jsonb;
begin
  if p_client_id is null then
    raise exception 'backfill_converting_touches: client id is null' using errcode = 'null_value_not_allowed';
  end if;
  v_result := ci_private.reconcile_client_conversions(p_client_id);
  return (v_result ->> 'marks_added')::integer + (v_result ->> 'marks_removed')::integer;
end
$$;

-- Public: re-derive a client's conversions and marks from history (contract
-- section 6), for hosts that import history or write with triggers disabled.
-- service_role (and database roles that are not PostgREST's) only.
-- security definer: writes the client's leads and activities as the layer.
create or replace function public.reconcile_conversions(p_client_id uuid)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
begin
  if ci_private.caller_role() in ('anon', 'authenticated') then
    raise exception 'reconcile_conversions is for service_role' using errcode = 'insufficient_privilege';
  end if;
  if p_client_id is null then
    raise exception 'client id is required' using errcode = 'null_value_not_allowed';
  end if;
  if not exists (select 1 from public.clients as c where c.id = p_client_id) then
    raise exception 'unknown client %', p_client_id using errcode = 'no_data_found';
  end if;
  return jsonb_build_object('client_id', p_client_id)
    || ci_private.reconcile_client_conversions(p_client_id);
end
$$;

comment on function public.reconcile_conversions(uuid) is
'Re-derives the client''s conversions (status, converted_at), converting-touch marks and kept per-lead touches '
'from its history (contract section 3) in one set-based pass. Returns jsonb {client_id, leads_converted, '
'leads_unconverted, leads_retimed, marks_added, marks_removed, lead_touches_leads, lead_touches_rows}: counts of '
'what it corrected (0 everywhere when the state already followed history). service_role only: other callers get '
'SQLSTATE 42501; a null client 22004; an unknown client P0002.';

-- The triggers: the booking row trigger is replaced by the statement triggers
-- (which see inserts, updates and deletes alike); every trigger that keeps the
-- conversion state fires in replica-mode sessions too (enable always), since a
-- replica-mode writer (logical replication, a trigger-less bulk loader) writes
-- history like any other, and every one of them only re-derives state from
-- history, so firing again where the source had already derived is harmless.
drop trigger if exists activities_ci_record_conversion on public.activities;

drop trigger if exists leads_ci_conversion_time_ins on public.leads;
create trigger leads_ci_conversion_time_ins
before insert on public.leads
for each row
when (new.status::text = 'converted' or new.converted_at is not null)
execute function ci_private.leads_conversion_time();

drop trigger if exists leads_ci_conversion_time_upd on public.leads;
create trigger leads_ci_conversion_time_upd
before update of status, converted_at on public.leads
for each row
when (
  old.status is distinct from new.status
  or old.converted_at is distinct from new.converted_at
)
execute function ci_private.leads_conversion_time();

drop trigger if exists leads_ci_mark_converting_touch on public.leads;
create trigger leads_ci_mark_converting_touch
after update of status, converted_at on public.leads
for each row
when (
  old.converted_at is distinct from new.converted_at
  or (old.status::text = 'converted') is distinct from (new.status::text = 'converted')
)
execute function ci_private.leads_mark_converting_touch();

alter table public.leads enable always trigger leads_ci_conversion_time_ins;
alter table public.leads enable always trigger leads_ci_conversion_time_upd;
alter table public.leads enable always trigger leads_ci_mark_converting_touch;
alter table public.activities enable always trigger activities_ci_lead_touches_ins;
alter table public.activities enable always trigger activities_ci_lead_touches_del;
alter table public.activities enable always trigger activities_ci_lead_touches_upd;
alter table public.activities enable always trigger activities_ci_lead_touches_truncate;

revoke execute on function ci_private.is_deriving() from public, anon, authenticated;
revoke execute on function ci_private.remark_leads(uuid [], uuid) from public, anon, authenticated;
revoke execute on function ci_private.derive_conversions(uuid [], boolean, uuid) from public, anon, authenticated;
revoke execute on function ci_private.mark_converting_touch(uuid) from public, anon, authenticated;
revoke execute on function ci_private.leads_conversion_time() from public, anon, authenticated;
revoke execute on function ci_private.leads_mark_converting_touch() from public, anon, authenticated;
revoke execute on function ci_private.check_booking_rows(jsonb) from public, anon, authenticated;
revoke execute on function ci_private.activities_lead_touches_changed() from public, anon, authenticated;
revoke execute on function ci_private.activities_lead_touches_upd() from public, anon, authenticated;
revoke execute on function ci_private.recompute_lead_touches(uuid [], uuid []) from public, anon, authenticated;
revoke execute on function ci_private.ensure_lead_touches(uuid, boolean) from public, anon, authenticated;
revoke execute on function ci_private.reconcile_client_conversions(uuid) from public, anon, authenticated;
revoke execute on function ci_private.backfill_converting_touches(uuid) from public, anon, authenticated;
revoke execute on function public.reconcile_conversions(uuid) from public, anon, authenticated;
grant execute on function ci_private.is_deriving() to service_role;
grant execute on function ci_private.check_booking_rows(jsonb) to service_role;
grant execute on function ci_private.ensure_lead_touches(uuid, boolean) to service_role;
grant execute on function ci_private.reconcile_client_conversions(uuid) to service_role;
grant execute on function ci_private.backfill_converting_touches(uuid) to service_role;
grant execute on function public.reconcile_conversions(uuid) to service_role;
