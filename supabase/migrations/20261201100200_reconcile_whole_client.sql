-- The reconciliation of a whole client, set-based, in functions of one concern
-- each (issue 15: the refresh's cost; review items D8 and D2 of release 0.3.0).
--
-- The released reconciliation passed every lead id of the client to
-- ci_private.derive_conversions, whose statements are written for a few leads:
-- the ids were unnested (estimated at 200 rows whatever their number) and each
-- lead probed by key, its bookings and its last touch before conversion probed
-- by lead, then the same again for the marks (remark_leads). At 21,000 leads
-- with nothing to correct: 0.33-0.36 s, a tenth of the refresh.
--
-- Here the client's leads are read by client, joined to their bookings and
-- their status path in one grouped statement (joins of tables only: whatever
-- the planner picks, each is a probe by key or a hash), and the marks are
-- found from the client's converted leads and its marked touches. The rules
-- are those of derive_conversions and remark_leads (docs/conversions.md);
-- tests/test_reconcile_whole_client.py draws messy histories (triggers off)
-- and checks both give the same leads and marks.
--
-- ci_private.before_reconcile holds the statistics steps that the released
-- reconciliation had in its own body (040000 and 070200 each copied it whole
-- to add one); reconcile_client_conversions now only calls its steps, so a
-- later change replaces one small function.

-- The statistics brought up to date before a client is reconciled: tables
-- never analysed or changed by a fifth, and tables that have not seen the client.
create or replace function ci_private.before_reconcile(p_client_id uuid)
returns void
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform ci_private.analyze_stale_tables();
  perform ci_private.analyze_unseen_client(p_client_id);
end
$$;

comment on function ci_private.before_reconcile(uuid) is
'Statistics steps run before a client''s reconciliation: analyze_stale_tables() (tables never analysed or changed '
'by more than a fifth) then analyze_unseen_client(client) (tables whose estimate of the client is under a tenth '
'of its rows). Returns nothing; ANALYZE of the layer''s columns only.';

-- Every lead of the client derived from its history: status and converted_at
-- (bookings and the status path), then the converting-touch marks. Returns
-- the same counts as derive_conversions.
create or replace function ci_private.derive_client_conversions(p_client_id uuid)
returns jsonb
language plpgsql
security definer
set search_path = ''
set jit = off
as $$
declare
  v_prev text := pg_catalog.current_setting('ci.deriving', true);
  v_converted integer := 0;
  v_unconverted integer := 0;
  v_retimed integer := 0;
  v_marks record;
begin
  if p_client_id is null then
    raise exception 'derive_client_conversions: client id is null' using errcode = 'null_value_not_allowed';
  end if;
  perform pg_catalog.set_config('ci.deriving', 'on', true);

  -- One statement (one snapshot): the leads whose state differs from their
  -- history, read set-based, then only those written, each probed by key
  -- (a join to the whole client could be planned as a scan of every lead).
  with calc as (
    -- Each live lead of the client with its status path and, over its
    -- bookings after its last un-conversion: the first with a finite time,
    -- and whether one is at its converted_at.
    select
      l.id, l.client_id, l.status::text as status, l.converted_at, l.updated_at,
      r.lead_id is not null as pinned, r.status_converted_at, r.unconverted_at,
      min(a.created_at) filter (where a.created_at < 'infinity'::timestamptz) as first_booking,
      coalesce(bool_or(a.created_at = l.converted_at), false) as booked_at_converted
    from public.leads as l
    left join ci_private.lead_conversion_status as r on l.id = r.lead_id
    left join public.activities as a
      on
        l.id = a.lead_id
        and l.client_id = a.client_id
        and ci_private.is_conversion_action(a.action)
        and a.created_at > coalesce(r.unconverted_at, '-infinity'::timestamptz)
    where l.client_id = p_client_id
      and l.deleted_at is null
    group by l.id, r.lead_id
  ),

  want as (
    select
      c.*,
      case
        when c.pinned then c.status_converted_at
        when c.status = 'converted' and c.converted_at is null then coalesce(c.updated_at, pg_catalog.now())
        when c.status = 'converted' and not c.booked_at_converted then c.converted_at
      end as s
    from calc as c
  ),

  diff as materialized (
    select
      w.*,
      (w.s is not null or w.first_booking is not null) as want_converted,
      least(w.s, w.first_booking) as want_at
    from want as w
    where (w.status = 'converted') is distinct from (w.s is not null or w.first_booking is not null)
      or ((w.s is not null or w.first_booking is not null) and w.converted_at is distinct from least(w.s, w.first_booking))
  ),

  upd as (
    update public.leads as l
    set
      status = case when d.want_converted then 'converted' else 'in_sequence' end::public.lead_status,
      converted_at = d.want_at
    from diff as d
    where l.id = d.id
      and l.id = any((select array_agg(d2.id) from diff as d2)::uuid [])
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

  select * into v_marks from ci_private.remark_client(p_client_id);
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

comment on function ci_private.derive_client_conversions(uuid) is
'Derives every lead of a client from its history (contract section 3; docs/conversions.md): status and converted_at '
'from the first finite booking after the last un-conversion and the status path, then the converting-touch marks '
'(remark_client). Returns {leads_converted, leads_unconverted, leads_retimed, marks_added, marks_removed}, counts of '
'rows changed. Same rules as derive_conversions over all the client''s lead ids, read by client. '
'Errors: 23502 when the client id is null.';

-- The converting-touch marks of a whole client: on each converted lead, its
-- last outbound touch with a finite time at or before converted_at (ties: the
-- greater id); no other touch of the client's leads marked.
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
  ),

  -- The marked touches of the client or of its leads.
  marked as (
    select a.id
    from public.activities as a
    where a.client_id = p_client_id and a.led_to_booking
    union
    select a.id
    from public.leads as l
    inner join public.activities as a on l.id = a.lead_id
    where l.client_id = p_client_id
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
'touch of the client or of its leads. Returns (added, removed), rows changed. Same rule as remark_leads.';

-- The reconciliation: its steps only (see the header).
create or replace function ci_private.reconcile_client_conversions(p_client_id uuid)
returns jsonb
language plpgsql
security definer
set search_path = ''
set jit = off
as $$
declare
  v_result jsonb;
  v_touch_leads integer;
  v_rows integer;
begin
  if p_client_id is null then
    raise exception 'reconcile_client_conversions: client id is null' using errcode = 'null_value_not_allowed';
  end if;
  -- One reconciliation of a client at a time (a refresh holds its own lock too).
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('ci_reconcile'), pg_catalog.hashtext(p_client_id::text));
  perform ci_private.before_reconcile(p_client_id);
  v_result := ci_private.derive_client_conversions(p_client_id);
  -- The kept per-lead touches brought up to date (lead_touches_read_time migration).
  select s.leads, s.touch_rows into v_touch_leads, v_rows from ci_private.sync_lead_touches(p_client_id) as s;
  return v_result || jsonb_build_object(
    'lead_touches_leads', v_touch_leads,
    'lead_touches_rows', v_rows
  );
end
$$;

revoke execute on function ci_private.before_reconcile(uuid) from public, anon, authenticated;
grant execute on function ci_private.before_reconcile(uuid) to service_role;
revoke execute on function ci_private.derive_client_conversions(uuid) from public, anon, authenticated;
grant execute on function ci_private.derive_client_conversions(uuid) to service_role;
revoke execute on function ci_private.remark_client(uuid) from public, anon, authenticated;
grant execute on function ci_private.remark_client(uuid) to service_role;
