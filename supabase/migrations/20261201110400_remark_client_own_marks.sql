-- The re-marking of a whole client no longer reads the host's whole
-- activities table.
--
-- remark_client (migration 20261201100200) found the marked touches of the
-- client's leads by joining the leads to the activities on
-- `coalesce(a.led_to_booking, false)`, the predicate of the partial index
-- activities_ci_lead_mark_idx. The planner has no statistics for that
-- expression and estimates it at about half of the table. When the client
-- was a large part of the leads table it then joined them by hash to a
-- sequential scan of every tenant's activities, so the cost grew with the
-- host's table. On the 21,000-lead bench client (37% of a table of 56,593
-- leads; 323,000 activities) remark_client took 0.54-0.63 s (1.5 s with a
-- cold cache) of a 3.0-3.9 s refresh.
--
-- The join now also reads the mark as the plain column (the same rows):
-- the column's statistics give the planner the true number of marked
-- touches, and it picks between the two plans that are linear: the
-- client's leads probed one by one in the partial index, or every marked
-- touch of the table (all tenants' marks: one per converted lead, few next
-- to the table) joined to the client's leads. The measured figures are in
-- docs/performance-plans.md. Probing the client's lead ids always (an
-- alternative an independent review proposed) was measured dearer at
-- 105,000 leads: 0.30 s against 0.11 s for the statement's part.
--
-- tests/test_plan_robustness.py (test_remark_reads_marks_not_the_host_table)
-- checks that the statement reads no unmarked touch of another client, and
-- that no read of activities is estimated at more than ten times what it
-- finds; the previous body fails the second.
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
'touch of the client or of its leads. Returns (added, removed), rows changed. Same rule as remark_leads.';
