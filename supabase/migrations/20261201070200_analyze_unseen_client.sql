-- Plans that do not depend on luck (issue 15, item 2): a client the
-- statistics have never seen.
--
-- analyze_stale_tables (statistics_before_reconcile migration) analyses a
-- table never analysed or changed by more than a fifth since its last ANALYZE.
-- A client imported into a large table that was analysed before passes neither
-- test: a 3,000-lead client added to a 70,000-lead table is 4% of it, the
-- statistics estimate the client at one row, and each statement over the
-- client is planned for one row (WHO joined the client's leads to their first
-- touches by a nested loop scanning the client's index entries once per lead:
-- 5.7 s instead of 0.1 s). This asks the planner what it expects of the client
-- and counts what is there (up to ten times the estimate, and not at all when
-- the estimate is 10,000 rows or more: such a client is planned as a large one
-- already), and analyses each table whose estimate is under a tenth of the
-- count, from 1,000 rows up. A small client of the usual size for its table is
-- estimated near its size and costs three short index counts; an import is
-- analysed once, after which it is either among the most common values or
-- estimated at the average client.
-- The host's tables are analysed only in the columns the layer's statements
-- filter and join on: a full ANALYZE of activities (wide text and JSON
-- columns) cost several seconds, more than the refresh of a small client,
-- and an ANALYZE with a column list leaves the table's count of changes for
-- autovacuum's own full ANALYZE.
--
-- reconcile_client_conversions (every refresh and backfill) calls it after
-- analyze_stale_tables, rebuild_lead_touches after building a client whole.

-- Analyse each of the layer's hot tables whose statistics have not seen the
-- client; returns how many it analysed. security definer: run by the layer's
-- own functions on behalf of any caller (ANALYZE of a table the owner does not
-- own is a warning and a no-op).
create or replace function ci_private.analyze_unseen_client(p_client_id uuid)
returns integer
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_rel record;
  v_plan jsonb;
  v_estimate double precision;
  v_actual bigint;
  v_done integer := 0;
begin
  if p_client_id is null then
    return 0;
  end if;
  for v_rel in
    select * from (
      values
      (
        'public.leads (id, client_id, campaign_id, status, converted_at, deleted_at)',
        'select 1 from public.leads as l where l.client_id = %L'
      ),
      -- The outbound touches: what the layer reads, through its partial index.
      (
        'public.activities (id, client_id, lead_id, action, channel, created_at, led_to_booking, content_key)',
        'select 1 from public.activities as a where a.client_id = %L and ci_private.is_outbound_action(a.action)'
      ),
      ('ci_private.lead_touches', 'select 1 from ci_private.lead_touches as t where t.client_id = %L')
    ) as r (name, query)
  loop
    execute format('explain (format json) ' || v_rel.query, p_client_id) into v_plan;
    v_estimate := (v_plan -> 0 -> 'Plan' ->> 'Plan Rows')::double precision;
    -- Planned as a large client already: counting could only find it larger.
    -- Else counted only as far as the rule needs (ten times the estimate).
    continue when v_estimate >= 10000;
    execute format(
      'select count(*) from (' || v_rel.query || ' limit %s) as s',
      p_client_id, greatest(1000, ceil(10 * v_estimate)::bigint + 1)
    ) into v_actual;
    if v_actual >= 1000 and v_actual > 10 * v_estimate then
      execute format('analyze %s', v_rel.name);
      v_done := v_done + 1;
    end if;
  end loop;
  return v_done;
end
$$;

revoke execute on function ci_private.analyze_unseen_client(uuid) from public, anon, authenticated;

create or replace function ci_private.reconcile_client_conversions(p_client_id uuid)
returns jsonb
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_leads uuid [];
  v_result jsonb;
  v_touch_leads integer;
  v_rows integer;
begin
  if p_client_id is null then
    raise exception 'reconcile_client_conversions: client id is null' using errcode = 'null_value_not_allowed';
  end if;
  -- One reconciliation of a client at a time (a refresh holds its own lock too).
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('ci_reconcile'), pg_catalog.hashtext(p_client_id::text));
  -- Plans that do not depend on luck: statistics that have not seen a bulk import
  -- (a table never analysed, or changed much since) are brought up to date first.
  perform ci_private.analyze_stale_tables();
  -- ... and so are those that have not seen this client: a small client
  -- imported into a large analysed table passes no fifth-changed threshold.
  perform ci_private.analyze_unseen_client(p_client_id);

  select array_agg(l.id) into v_leads from public.leads as l where l.client_id = p_client_id;
  v_result := ci_private.derive_conversions(coalesce(v_leads, '{}'::uuid []), false, p_client_id);

  -- The kept per-lead touches brought up to date (new touches since the last
  -- read, anything written with the triggers off): lead_touches_read_time migration.
  select s.leads, s.touch_rows into v_touch_leads, v_rows from ci_private.sync_lead_touches(p_client_id) as s;

  return v_result || jsonb_build_object(
    'lead_touches_leads', v_touch_leads,
    'lead_touches_rows', v_rows
  );
end
$$;


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
  -- What the rebuild wrote is new to the statistics (the per-touch relation
  -- built next reads it by client): analysed when they have not seen it.
  if v_written >= 1000 then
    perform ci_private.analyze_unseen_client(p_client_id);
  end if;
  return v_written;
end
$$;

revoke execute on function ci_private.reconcile_client_conversions(uuid) from public, anon, authenticated;
grant execute on function ci_private.reconcile_client_conversions(uuid) to service_role;
revoke execute on function ci_private.rebuild_lead_touches(uuid) from public, anon, authenticated;
grant execute on function ci_private.rebuild_lead_touches(uuid) to service_role;
