-- A soft-deleted lead carries no converting-touch mark (contract section 3:
-- rows with deleted_at set are ignored everywhere).
--
-- Bookings of a soft-deleted lead already made no conversion (the booking and
-- lead triggers skip them), but a lead the writer set to converted and then
-- soft-deleted kept its mark, and the refresh's re-marking (remark_client)
-- and a late send (remark_leads) set it again (review finding). Now:
-- - the three functions that place marks (remark_leads, remark_client and
--   the lead trigger's leads_mark_converting_touch) take only leads with
--   deleted_at null as converted, so a soft-deleted lead's marks are removed
--   wherever they are re-derived;
-- - the lead trigger also fires when deleted_at is set or cleared: soft
--   deletion removes the mark at once; restoration derives the lead's
--   conversion from its history (bookings written, moved, re-timed or
--   deleted while it was soft-deleted converted nothing then) and marks it;
-- - a restored lead is rescored (new trigger leads_ci_score_restore): an
--   ICP or weights change while it was soft-deleted skipped it.
-- A soft-deleted lead's status and converted_at stay as the host wrote them.
-- (The last two found by a fresh user's review of the first version: the
-- restored lead's state depended on the order of writes, and its score stayed
-- stale for good.)
-- Bodies are those of migrations 20261201060100 (remark_leads),
-- 20261201110400 (remark_client) and 20261201060000 (the trigger function,
-- with 20261201110000's generic plans), each with one added condition.
-- Cost to the host (1,000 leads of a 3,000-lead client, 103 of them
-- converted, each soft-deleted then restored by its own statement, against
-- the same with the two triggers disabled, two rounds on a VM shared with a
-- review run): a soft delete 69-151 us against 32-55 us, a restore 245-326
-- us against 51-87 us (about half of it the rescore). The trigger fires on
-- soft deletion only for converted leads and derives a restored lead only
-- when it is converted or has a booking: a first version that did both for
-- every lead cost 181-185 us and 714-741 us.
-- Tests: pgTAP 127_soft_deleted_marks.

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
  if p_client_id is null and pg_catalog.current_setting('plan_cache_mode') <> 'force_generic_plan' then
    -- The triggers' path: with cached (generic) plans (see the header).
    select g.added, g.removed into added, removed from ci_private.remark_leads_generic(p_lead_ids) as g;
    return;
  end if;
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
    where l.id = any(p_lead_ids) and l.status::text = 'converted' and l.converted_at is not null
      and l.deleted_at is null;

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

    -- The client's converted leads read by client (not probed one by one by
    -- id), and its marks through the partial index of marked touches: at
    -- 21k leads, 0.65 s became 0.15 s.
    target as (
      select t.id
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
      where l.client_id = p_client_id and l.id in (select k.id from k)
        and l.status::text = 'converted' and l.converted_at is not null and l.deleted_at is null
    ),

    marked as (
      select a.id
      from public.activities as a
      where a.client_id = p_client_id and a.led_to_booking
      union
      select a.id
      from public.activities as a
      where coalesce(a.led_to_booking, false) and a.lead_id in (select k.id from k)
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


create or replace function ci_private.remark_client(p_client_id uuid, out added integer, out removed integer)
returns record
language plpgsql
security definer
set search_path = ''
set jit = off
as $$
declare
  v_prev text := pg_catalog.current_setting('ci.deriving', true);
begin
  perform pg_catalog.set_config('ci.deriving', 'on', true);
  -- One statement (one snapshot: a booking committed meanwhile is either
  -- seen whole or not at all), writing only the touches that change, each
  -- probed by key.
  with target as (
    -- The touch each converted lead should have marked.
    select t.id
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
    where l.client_id = p_client_id
      and l.status::text = 'converted'
      and l.converted_at is not null
      and l.deleted_at is null
  ),

  -- The marked touches of the client or of its leads. The second reads the
  -- mark as the plain column too: its statistics tell the planner how few
  -- touches are marked (coalesce alone is estimated at half the table).
  marked as (
    select a.id
    from public.activities as a
    where a.client_id = p_client_id and a.led_to_booking
    union
    select a.id
    from public.leads as l
    inner join public.activities as a on l.id = a.lead_id
    where l.client_id = p_client_id
      and a.led_to_booking
      and coalesce(a.led_to_booking, false)
  ),

  wanted as materialized (
    select t.id, true as mark from target as t
    union all
    select m.id, false from marked as m where m.id not in (select t.id from target as t)
  ),

  changed as (
    update public.activities as a
    set led_to_booking = w.mark
    from wanted as w
    where a.id = w.id
      and a.id = any((select array_agg(w2.id) from wanted as w2)::uuid [])
      and a.led_to_booking is distinct from w.mark
    returning w.mark
  )

  select
    count(*) filter (where c.mark)::integer,
    count(*) filter (where not c.mark)::integer
  into added, removed
  from changed as c;
  perform pg_catalog.set_config('ci.deriving', coalesce(v_prev, ''), true);
end
$$;

comment on function ci_private.remark_client(uuid) is
'Sets the converting-touch marks (activities.led_to_booking) of a whole client: true on each converted lead''s last '
'outbound touch with a finite time at or before converted_at (ties: the greater id), false on every other marked '
'touch of the client or of its leads. Soft-deleted leads (deleted_at set) are not converted here: their marks are '
'removed. Returns (added, removed), rows changed. Same rule as remark_leads.';

-- The lead trigger's re-marking of one lead (migration 20261201060000's body).
create or replace function ci_private.leads_mark_converting_touch()
returns trigger
language plpgsql
security definer
set search_path = ''
set plan_cache_mode = force_generic_plan
as $$
declare
  v_prev text;
  v_at timestamptz;
  v_client uuid;
  v_target uuid;
  v_target_marked boolean;
  v_others uuid [];
begin
  if ci_private.is_deriving() then
    return null;
  end if;
  if old.deleted_at is not null and new.deleted_at is null then
    -- Restored: bookings written, moved or deleted while the lead was
    -- soft-deleted converted nothing then; its conversion is derived from
    -- its history now, and its mark with it (derive_conversions re-marks).
    -- A lead neither converted nor booked has nothing to derive (one probe).
    if new.status::text = 'converted' or exists (
      select 1 from public.activities as a
      where a.lead_id = new.id and ci_private.is_conversion_action(a.action)
    ) then
      perform ci_private.derive_conversions(array[new.id]);
    end if;
    return null;
  end if;
  -- The lead as it is now (as remark_leads reads it), its converting touch
  -- and its other marked touches: three index probes (simple statements:
  -- measured cheaper than one statement that joins them).
  select l.converted_at, l.client_id into v_at, v_client
  from public.leads as l
  where l.id = new.id and l.status::text = 'converted' and l.converted_at is not null
    and l.deleted_at is null;
  if found then
    select a.id, coalesce(a.led_to_booking, false) into v_target, v_target_marked
    from public.activities as a
    where a.lead_id = new.id
      and a.client_id = v_client
      and ci_private.is_outbound_action(a.action)
      and a.created_at > '-infinity'::timestamptz
      and a.created_at < 'infinity'::timestamptz
      and a.created_at <= v_at
    order by a.created_at desc, a.id desc
    limit 1;
  end if;
  v_others := array(
    select a.id from public.activities as a
    where a.lead_id = new.id and coalesce(a.led_to_booking, false) and a.id is distinct from v_target
  );
  if cardinality(v_others) = 0 and (v_target is null or v_target_marked) then
    return null;
  end if;

  v_prev := pg_catalog.current_setting('ci.deriving', true);
  perform pg_catalog.set_config('ci.deriving', 'on', true);
  if cardinality(v_others) = 0 then
    -- A lead newly converted: mark one touch, by its key.
    update public.activities as a set led_to_booking = true where a.id = v_target;
  else
    -- A mark moves or goes (re-timed, un-converted).
    update public.activities as a
    set led_to_booking = (a.id is not distinct from v_target)
    where a.id = any(v_others) or (a.id = v_target and not v_target_marked);
  end if;
  perform pg_catalog.set_config('ci.deriving', coalesce(v_prev, ''), true);
  return null;
end
$$;

comment on function ci_private.remark_leads(uuid [], uuid) is
'Sets the converting-touch marks (activities.led_to_booking) of the given leads: true on each converted, not '
'soft-deleted lead''s last outbound touch with a finite time at or before converted_at (ties: the greater id), false '
'on their other marked touches; with p_client_id, also false on every other marked touch of that client. Returns '
'(added, removed), rows changed.';

-- Soft deletion and restoration re-mark the lead too.
drop trigger if exists leads_ci_mark_converting_touch on public.leads;
create trigger leads_ci_mark_converting_touch
after update of status, converted_at, deleted_at on public.leads
for each row
when (
  old.converted_at is distinct from new.converted_at
  or (old.status::text = 'converted') is distinct from (new.status::text = 'converted')
  -- soft deletion of a converted lead (only a converted lead has a mark;
  -- another's, written with the triggers off, goes at the next
  -- reconciliation), and every restoration
  or (old.deleted_at is null and new.deleted_at is not null and old.status::text = 'converted')
  or (old.deleted_at is not null and new.deleted_at is null)
)
execute function ci_private.leads_mark_converting_touch();
alter table public.leads enable always trigger leads_ci_mark_converting_touch;

-- A restored lead is scored with the client's scoring context of now.
drop trigger if exists leads_ci_score_restore on public.leads;
create trigger leads_ci_score_restore
before update of deleted_at on public.leads
for each row
when (old.deleted_at is not null and new.deleted_at is null)
execute function ci_private.leads_score();
