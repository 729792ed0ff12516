-- The layer's readers in a read-only transaction (a PostgREST GET, a hot
-- standby, BEGIN READ ONLY): issue 15's "readers write".
--
-- detect_who_patterns brings the kept per-lead touches up to date first
-- (ci_private.sync_lead_touches). After any send since the last read-write
-- read, that wrote lead_touches, and the read-only call failed with "cannot
-- execute DELETE in a read-only transaction". Now the comparison is skipped in
-- a read-only transaction: WHO reads the kept rows as they stand (touches
-- written since the last refresh or read-write detector call are not in them
-- yet; a client never built is read from its activities, as before). Outside
-- read-only transactions nothing changes.
--
-- detect_what_patterns, detect_when_patterns and detect_how_patterns build the
-- per-touch relation in temporary tables, which a read-only transaction
-- cannot create. They failed with "cannot execute CREATE TABLE AS in a
-- read-only transaction". They still cannot run there, but ci_private.ensure_touches
-- now fails first, with the same SQLSTATE (25006) and a message that says
-- what to do instead.
--
-- sync_lead_touches is the body of the lead_touches_read_time migration,
-- with jit = off (migration 100300) and the read-only branch added.

create or replace function ci_private.sync_lead_touches(p_client_id uuid, out leads integer, out touch_rows integer)
language plpgsql volatile security definer
set search_path = ''
set jit = off
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
  -- A read-only transaction (a PostgREST GET, a hot standby) cannot write the
  -- kept rows: its readers read them as the last read-write statement left
  -- them (WHO reads a client never built from its activities).
  if pg_catalog.current_setting('transaction_read_only')::boolean then
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


-- The per-touch relation of one client, built once per statement; refuses a
-- read-only transaction with a message that says what to do (see the header).
create or replace function ci_private.ensure_touches(p_client_id uuid)
returns void
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform 'PRAGMA:TABLE: ci_touch_meta (client_id uuid, built_at timestamptz, leads integer, touches integer, decided_leads integer, skipped jsonb)';
  if pg_catalog.current_setting('transaction_read_only')::boolean then
    raise exception 'the WHAT, WHEN and HOW detectors build temporary tables and cannot run in a read-only transaction'
      using errcode = 'read_only_sql_transaction',
      hint = 'call detect_what_patterns, detect_when_patterns or detect_how_patterns in a read-write transaction '
      || '(over PostgREST: POST, not GET), or read the stored patterns with get_conversion_patterns';
  end if;
  if pg_catalog.to_regclass('pg_temp.ci_touch_meta') is not null then
    if exists (
      select 1 from pg_temp.ci_touch_meta as m
      where m.client_id = p_client_id and m.built_at = pg_catalog.statement_timestamp()
    ) then
      return;
    end if;
  end if;
  perform ci_private.prepare_touches(p_client_id);
end
$$;
