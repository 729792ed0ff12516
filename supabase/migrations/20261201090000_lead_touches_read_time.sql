-- The kept per-lead touches (ci_private.lead_touches) are brought up to date
-- when they are read, not on every send (issue 15: a host's single send paid
-- ~200 us for the append of its kept row, about 2.3x the insert itself).
--
-- An insert into activities no longer writes the kept rows
-- (activities_lead_touches_changed, lead_touches_keep_content migration); the
-- marks, a function of history kept in activities, are still derived by the
-- write's own trigger. Before anything reads the kept rows (the refresh's
-- reconciliation, the per-touch relation every detector reads, a rebuild
-- check), ci_private.sync_lead_touches compares them per lead with the
-- client's outbound touches, in one pass over each side, and recomputes only
-- the leads that differ: new touches, and whatever was written with the
-- layer's triggers disabled. Deletes and updates still recompute their leads
-- at once (a delete forgets the content keys no touch holds: erasure).
--
-- Also: a lead's position is an integer (touch 32,768 of one lead, a bot or a
-- runaway sequence, would have overflowed smallint and failed the insert or
-- the refresh).

do $$
begin
  if (
    select a.atttypid from pg_catalog.pg_attribute as a
    where a.attrelid = 'ci_private.lead_touches'::regclass and a.attname = 'touch_no'
  ) <> 'integer'::regtype then
    alter table ci_private.lead_touches alter column touch_no type integer;
  end if;
  if (
    select a.atttypid from pg_catalog.pg_attribute as a
    where a.attrelid = 'ci_private.touch'::regclass and a.attname = 'position'
  ) <> 'integer'::regtype then
    alter type ci_private.touch alter attribute position type integer;
  end if;
end
$$;

-- One touch's hash for the per-lead fingerprint: its id, time (whole
-- microseconds) and channel in one 64-bit hash, so that touches trading
-- times or channels change the sum (sums per column did not), and exact
-- (a float sum of times depended on the order rows were added in).
create or replace function ci_private.touch_hash(p_id uuid, p_at timestamptz, p_channel integer)
returns bigint
language sql immutable parallel safe
set search_path = ''
as $$
  select pg_catalog.uuid_hash_extended(
    p_id, pg_catalog.hashint8extended((extract(epoch from p_at) * 1000000)::bigint, p_channel::bigint)
  )
$$;

-- Where a read of one client's kept rows stands: the client, the statement
-- (its start time), and this transaction's count of inserted, updated and
-- deleted activities. Equal to the value sync_lead_touches stored in the
-- transaction-local setting ci.lead_touches_synced when nothing can have
-- changed for this reader since it brought the rows up to date (other
-- sessions' commits in the same statement are read by the next statement).
create or replace function ci_private.lead_touches_sync_point(p_client_id uuid)
returns text
language sql volatile
set search_path = ''
as $$
  select concat_ws(
    '/', p_client_id, pg_catalog.statement_timestamp(),
    pg_catalog.pg_stat_get_xact_tuples_inserted('public.activities'::regclass),
    pg_catalog.pg_stat_get_xact_tuples_updated('public.activities'::regclass),
    pg_catalog.pg_stat_get_xact_tuples_deleted('public.activities'::regclass)
  )
$$;

-- Bring one client's kept rows up to date with its activities: each lead's
-- kept rows are compared with its outbound touches (finite time, known
-- channel) by a fingerprint (count, sum of per-touch hashes of id, time and
-- channel, the same over the marked touches), each side aggregated in one pass by lead; the leads that
-- differ are recomputed (recompute_lead_touches: numbering, gaps, channel
-- masks and sequence codes; content keys kept by touch id, new touches
-- pending). A client never built is built whole (rebuild_lead_touches).
-- Returns the leads recomputed and the rows written for them (0, 0 when the
-- rows were up to date).
-- security definer: run by the refresh, the detectors and the reconciliation
-- (which have checked the caller), or by service_role.
create or replace function ci_private.sync_lead_touches(p_client_id uuid, out leads integer, out touch_rows integer)
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_leads uuid [];
begin
  leads := 0;
  touch_rows := 0;
  -- Read once per statement: the refresh reads the kept rows four times
  -- (reconciliation, content fill, WHO, the per-touch relation). Skipped when
  -- this statement already brought this client up to date and this
  -- transaction has written no activity since (its own inserts, updates and
  -- deletes of activities are counted by the statistics of the transaction).
  if pg_catalog.current_setting('ci.lead_touches_synced', true) = ci_private.lead_touches_sync_point(p_client_id) then
    return;
  end if;
  if not exists (select 1 from ci_private.lead_touches_built as b where b.client_id = p_client_id) then
    touch_rows := ci_private.rebuild_lead_touches(p_client_id);
    select count(distinct t.lead_id)::integer into leads from ci_private.lead_touches as t where t.client_id = p_client_id;
    perform pg_catalog.set_config('ci.lead_touches_synced', ci_private.lead_touches_sync_point(p_client_id), true);
    return;
  end if;
  with want as (
    select
      a.lead_id,
      count(*) as n,
      sum(ci_private.touch_hash(a.id, a.created_at, ci_private.channel_code(a.channel))) as h,
      sum(ci_private.touch_hash(a.id, a.created_at, ci_private.channel_code(a.channel))) filter (where a.led_to_booking) as m
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
      sum(ci_private.touch_hash(t.touch_id, t.created_at, t.channel)) as h,
      sum(ci_private.touch_hash(t.touch_id, t.created_at, t.channel)) filter (where t.led_to_booking) as m
    from ci_private.lead_touches as t
    where t.client_id = p_client_id
    group by t.lead_id
  )

  select array_agg(coalesce(w.lead_id, k.lead_id)) into v_leads
  from want as w
  full join kept as k on w.lead_id = k.lead_id
  where (w.n, w.h, w.m) is distinct from (k.n, k.h, k.m);
  leads := coalesce(cardinality(v_leads), 0);
  if v_leads is not null then
    touch_rows := ci_private.recompute_lead_touches(array_fill(p_client_id, array[cardinality(v_leads)]), v_leads);
  end if;
  perform pg_catalog.set_config('ci.lead_touches_synced', ci_private.lead_touches_sync_point(p_client_id), true);
end
$$;

comment on function ci_private.sync_lead_touches(uuid) is
'Bring one client''s kept per-lead touches (ci_private.lead_touches) up to date with its activities: '
'leads whose kept rows differ from their outbound touches (count, times, ids, channels, marks) are '
'recomputed; a client never built is built whole. Returns (leads, touch_rows): leads recomputed, rows '
'written. Cost: one aggregate pass over the client''s outbound touches and one over its kept rows, '
'once per statement (a later call in the same statement, with no activity written since by this '
'transaction, returns (0, 0) at once).';

-- The entry point the readers call (prepare_touches, reconcile): the kept
-- rows up to date. p_verify is kept for callers of the old signature (it
-- asked for the row-count check, which the per-lead comparison replaces).
-- Returns the rows written.
create or replace function ci_private.ensure_lead_touches(p_client_id uuid, p_verify boolean default false)
returns integer
language plpgsql volatile security definer
set search_path = ''
as $$
begin
  return (select s.touch_rows from ci_private.sync_lead_touches(p_client_id) as s);
end
$$;

comment on function ci_private.ensure_lead_touches(uuid, boolean) is
'The kept per-lead touches of one client up to date (ci_private.sync_lead_touches); returns the rows '
'written. p_verify is ignored (kept for the old signature: every call compares).';

revoke execute on function ci_private.touch_hash(uuid, timestamptz, integer) from public, anon, authenticated;
grant execute on function ci_private.touch_hash(uuid, timestamptz, integer) to service_role;
revoke execute on function ci_private.lead_touches_sync_point(uuid) from public, anon, authenticated;
grant execute on function ci_private.lead_touches_sync_point(uuid) to service_role;
revoke execute on function ci_private.sync_lead_touches(uuid) from public, anon, authenticated;
grant execute on function ci_private.sync_lead_touches(uuid) to service_role;
revoke execute on function ci_private.ensure_lead_touches(uuid, boolean) from public, anon, authenticated;
grant execute on function ci_private.ensure_lead_touches(uuid, boolean) to service_role;

-- WHO reads each lead's first kept touch (who_lead_counts brings the kept rows
-- up to date first, a write): its callers are volatile too, so that nothing
-- plans them as read-only.
alter function ci_private.who_lead_groups(uuid) volatile;
alter function ci_private.als_learning_rows(uuid) volatile;
alter function public.detect_who_patterns(uuid) volatile;
