-- The layer's conversion bookkeeping on the host's write path without
-- planning at every call (issue 15, part 2). ci_private.derive_conversions
-- and ci_private.remark_leads take their leads as an array, so PL/pgSQL made
-- a custom plan for each call: measured on a 5,000-lead client, one booking
-- activity (meeting_booked) spent about 8 ms planning derive_conversions' one
-- statement and 2.5 ms planning remark_leads', of some 15 ms in all, and a
-- send to a converted lead about 2.5 ms in remark_leads. Called by the
-- triggers (no client given), they now run under plan_cache_mode =
-- force_generic_plan, set by a small wrapper each (a SET clause costs
-- microseconds): their plans probe the indexes a lead at a time, right for one
-- lead or a bulk statement's thousands (as recompute_lead_touches). With a
-- client (the reconciliation of a whole client, run by the refresh) they plan
-- as before: a client's leads at once may want hash joins.
-- The bodies are those of the conversion_history migration, unchanged but
-- for the first statement of each (the hand-off to the wrapper).

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
        and l.status::text = 'converted' and l.converted_at is not null
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
  if p_client_id is null and pg_catalog.current_setting('plan_cache_mode') <> 'force_generic_plan' then
    -- The triggers' path: with cached (generic) plans (see the header).
    return ci_private.derive_conversions_generic(p_lead_ids, p_lock);
  end if;
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

-- derive_conversions for the triggers, with cached plans (see the header).
-- security definer: as derive_conversions.
create or replace function ci_private.derive_conversions_generic(p_lead_ids uuid [], p_lock boolean)
returns jsonb
language plpgsql volatile security definer
set search_path = ''
set plan_cache_mode = force_generic_plan
as $$
begin
  return ci_private.derive_conversions(p_lead_ids, p_lock, null);
end
$$;

-- remark_leads for the triggers, with cached plans (see the header).
-- security definer: as remark_leads.
create or replace function ci_private.remark_leads_generic(
  p_lead_ids uuid [], out added integer, out removed integer
)
language plpgsql volatile security definer
set search_path = ''
set plan_cache_mode = force_generic_plan
as $$
begin
  select r.added, r.removed into added, removed from ci_private.remark_leads(p_lead_ids) as r;
end
$$;

revoke execute on function ci_private.derive_conversions_generic(uuid [], boolean) from public, anon, authenticated;
revoke execute on function ci_private.remark_leads_generic(uuid []) from public, anon, authenticated;
