-- The reconciliation (and so every refresh and backfill, which start with it)
-- first brings up to date the statistics of the tables it reads when they have
-- not seen a bulk import: a table never analysed, or one whose rows changed by
-- more than a fifth since its last ANALYZE. Without it, the first reconciliation
-- after a history import (UCI bank data: 41k leads, 106k touches, loaded by COPY
-- on a fresh database) planned nested loops over the client index and ran for
-- more than seven minutes; the same statement after ANALYZE takes seconds.
-- (Issue 15: "plans that do not depend on luck".)

-- Analyse each of the layer's hot tables whose statistics are stale; returns how
-- many it analysed. ANALYZE of a table the function's owner does not own is a
-- warning and a no-op, never an error. security definer: run by the layer's own
-- functions on behalf of any caller.
create or replace function ci_private.analyze_stale_tables()
returns integer
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_rel record;
  v_done integer := 0;
begin
  for v_rel in
    select c.oid::regclass::text as name
    from pg_catalog.pg_class as c
    left join pg_catalog.pg_stat_all_tables as s on s.relid = c.oid
    where c.oid in (
      'public.leads'::regclass, 'public.activities'::regclass, 'ci_private.lead_touches'::regclass
    )
      and (
        c.reltuples < 0
        or coalesce(s.n_mod_since_analyze, 0) > 0.2 * greatest(c.reltuples, 1000)
      )
  loop
    execute format('analyze %s', v_rel.name);
    v_done := v_done + 1;
  end loop;
  return v_done;
end
$$;

revoke execute on function ci_private.analyze_stale_tables() from public, anon, authenticated;

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
  -- Plans that do not depend on luck: statistics that have not seen a bulk import
  -- (a table never analysed, or changed much since) are brought up to date first.
  perform ci_private.analyze_stale_tables();

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
