-- The per-lead bookkeeping keeps the content keys the refresh computed
-- (content_off_write_path migration): activities no longer carry them.
--
-- recompute_lead_touches re-numbers a lead's touches by deleting and
-- re-inserting its rows; each surviving touch keeps the key its deleted row
-- held (joined by touch id), a new touch arrives pending (null). The
-- statement triggers forget keys no kept touch holds any more (erasure), and
-- mark a touch pending again when the host changes what its content is read
-- from (snapshot, subject, preview, metadata, channel) or moves it to
-- another lead (the derivation reads the lead's values): a merge is a delete
-- and an insert.

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
  v_kept_ids uuid [] := '{}';
  v_kept_keys integer [] := '{}';
  v_ids uuid [];
  v_keys integer [];
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
    -- lead's touches as that writer committed them. The content keys of the
    -- deleted rows are kept for the same touches.
    with deleted as (
      delete from ci_private.lead_touches as t
      using (select distinct u.client_id, u.lead_id from unnest(p_client_ids, p_lead_ids) as u (client_id, lead_id)) as k
      where t.client_id = k.client_id and t.lead_id = k.lead_id
      returning t.touch_id, t.content_key
    )

    select array_agg(d.touch_id), array_agg(d.content_key) into v_ids, v_keys
    from deleted as d
    where d.content_key is not null;
    if v_ids is not null then
      v_kept_ids := v_kept_ids || v_ids;
      v_kept_keys := v_kept_keys || v_keys;
    end if;

    with computed as (
      select
        k.client_id, k.lead_id, w.rn::integer as touch_no, w.id, w.created_at, w.channel,
        (date_part('epoch', w.created_at - w.prev_at) / 86400)::real as gap_days,
        w.channel_mask, w.sequence_code, w.led_to_booking, w.next_at is null as is_last
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
      select
        c.client_id, c.lead_id, c.touch_no, c.id, c.created_at, c.channel, c.gap_days, c.channel_mask, c.sequence_code,
        kept.content_key, c.led_to_booking, c.is_last
      from computed as c
      left join (
        select distinct on (u.touch_id) u.touch_id, u.content_key
        from unnest(v_kept_ids, v_kept_keys) as u (touch_id, content_key)
        order by u.touch_id
      ) as kept on kept.touch_id = c.id
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

-- After insert into or delete from activities (the transition table is
-- named changed_rows in both triggers): derive conversions and marks (the
-- conversion_history migration); after a delete, recompute the leads whose
-- outbound touches it removed and forget the content keys no kept touch
-- holds any more (erasure). An insert leaves the kept rows to be brought up
-- to date when read (ensure_lead_touches, lead_touches_read_time migration).
-- security definer: as recompute_lead_touches.
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
  v_keys integer [];
  v_one record;
begin
  -- An insert never writes the kept rows: a new touch is numbered when the
  -- rows are read (ensure_lead_touches brings a client's rows up to date
  -- from its activities, set-based, before the refresh and the detectors
  -- read them), so a send pays no bookkeeping. What cannot wait is the mark
  -- (a function of history, kept in activities): a booking, a row the
  -- writer marked, and an outbound touch of a converted lead (a late send
  -- may take the mark) are derived now.
  -- One row inserted (a single send, an open): one statement, and out.
  if tg_op = 'INSERT' then
    select
      (select count(*) from changed_rows as c) as n,
      ci_private.is_outbound_action(r.action) as outbound,
      ci_private.is_conversion_action(r.action) as booking,
      coalesce(r.led_to_booking, false) as marked,
      -- (A touch later than the conversion is never marked: nothing can move.)
      exists (
        select 1 from public.leads as l
        where l.id = r.lead_id and l.status::text = 'converted' and not (l.converted_at < r.created_at)
      ) as converted
    into v_one
    from changed_rows as r
    limit 1;
    if v_one.n = 1 and not v_one.booking and not v_one.marked and not (v_one.outbound and v_one.converted) then
      return null;
    end if;
  end if;

  select array_agg(n.client_id), array_agg(n.lead_id) into v_clients, v_leads
  from (
    select distinct r.client_id, r.lead_id from changed_rows as r where ci_private.is_outbound_action(r.action)
  ) as n;
  if v_leads is not null and tg_op = 'DELETE' then
    select ci_private.kept_content_keys(array_agg(r.client_id), array_agg(r.lead_id), array_agg(r.id)) into v_keys
    from changed_rows as r
    where ci_private.is_outbound_action(r.action);
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

  if v_keys is not null then
    perform ci_private.forget_content_keys(v_keys);
  end if;
  return null;
end
$$;

-- After update of activities: recompute the leads of outbound touches whose
-- lead, client, send time, action, channel or booking mark changed (before
-- and after: a touch can move between leads); mark pending the touches whose
-- content is to be read again (snapshot; subject, preview or metadata of a
-- touch without one; channel; lead), and forget the keys no kept touch holds
-- any more.
-- security definer: as recompute_lead_touches.
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
  v_pending_clients uuid [];
  v_pending_leads uuid [];
  v_pending_ids uuid [];
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
  -- Most updates change nothing the layer keeps (a status of the host's
  -- own): one pass over the rows, and out.
  -- (An aggregate, not EXISTS: a fast-start plan would join the two
  -- transition tables by a nested loop.)
  if (
    select count(*)
    from old_rows as o
    inner join new_rows as r on o.id = r.id
    where (o.client_id, o.lead_id, o.created_at, o.action, o.channel, o.led_to_booking)
      is distinct from (r.client_id, r.lead_id, r.created_at, r.action, r.channel, r.led_to_booking)
      or o.content_snapshot is distinct from r.content_snapshot
      or r.content_snapshot is null
      and (o.subject, o.content_preview, o.metadata) is distinct from (r.subject, r.content_preview, r.metadata)
  ) = 0 then
    return null;
  end if;

  with j as (
    select
      o.id, o.client_id as oc, o.lead_id as ol, o.action as oa, r.client_id as rc, r.lead_id as rl, r.action as ra,
      (o.client_id, o.lead_id, o.created_at, o.action) is distinct from (r.client_id, r.lead_id, r.created_at, r.action)
      as moved,
      o.channel is distinct from r.channel as content_changed,
      o.led_to_booking is distinct from r.led_to_booking as mark_changed,
      (o.client_id, o.lead_id, o.channel) is distinct from (r.client_id, r.lead_id, r.channel)
      or o.content_snapshot is distinct from r.content_snapshot
      or r.content_snapshot is null
      and (o.subject, o.content_preview, o.metadata) is distinct from (r.subject, r.content_preview, r.metadata)
      as reread
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
    (select bool_or(x.mark_changed and not x.moved and not x.content_changed) from x),
    -- Touches whose kept key goes: read before the recompute, from the old rows.
    (
      select ci_private.kept_content_keys(array_agg(j.oc), array_agg(j.ol), array_agg(j.id)) from j
      where (j.moved or j.reread) and ci_private.is_outbound_action(j.oa)
    ),
    (select array_agg(j.rc) from j where j.reread and ci_private.is_outbound_action(j.ra)),
    (select array_agg(j.rl) from j where j.reread and ci_private.is_outbound_action(j.ra)),
    (select array_agg(j.id) from j where j.reread and ci_private.is_outbound_action(j.ra))
  into v_clients, v_leads, v_bookings, v_remark, v_copy, v_keys, v_pending_clients, v_pending_leads, v_pending_ids;

  if v_leads is not null then
    perform ci_private.recompute_lead_touches(v_clients, v_leads);
  end if;
  if v_pending_ids is not null then
    -- Read again by the next refresh.
    update ci_private.lead_touches as t
    set content_key = null
    from unnest(v_pending_clients, v_pending_leads, v_pending_ids) as p (client_id, lead_id, touch_id)
    where t.client_id = p.client_id and t.lead_id = p.lead_id and t.touch_id = p.touch_id
      and t.content_key is not null;
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
    perform ci_private.forget_content_keys(v_keys);
  end if;
  return null;
end
$$;
