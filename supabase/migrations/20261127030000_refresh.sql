-- The weekly refresh: compute the four patterns of a client over one shared
-- snapshot, store them (current row + append-only history), attach health
-- warnings, apply learned weights only when the WHO checks pass, announce it.
-- refresh_all runs every active client in its own subtransaction, so one
-- client's failure is recorded and never stops the others.

-- Settings of the layer, one place (scripts/migrate.sh syncs supabase.toml's
-- [schedule] into it; these are the defaults where nobody did).
create table if not exists ci_private.settings (
  key text primary key,
  value text not null,
  updated_at timestamptz not null default pg_catalog.now()
);
revoke all on ci_private.settings from public;

insert into ci_private.settings (key, value) values
('refresh_cron', '0 3 * * 1'),
('trim_cron', '30 4 * * *'),
('keep_run_details', '14 days'),
('pattern_valid_for', '7 days'),
('pattern_grace', '2 days'),
('refresh_statement_timeout', '4h'),
('min_outcomes', '30')
on conflict (key) do nothing;

-- One setting's value (null when absent).
create or replace function ci_private.setting(p_key text)
returns text
language sql stable
set search_path = ''
as $$
  select s.value from ci_private.settings as s where s.key = p_key
$$;

-- Every refresh attempt of a client: what happened and why.
create table if not exists public.conversion_refresh_runs (
  id uuid primary key default public.uuid_generate_v7(),
  client_id uuid not null references public.clients (id) on delete cascade,
  started_at timestamptz not null default pg_catalog.now(),
  finished_at timestamptz,
  status text not null,
  detail jsonb not null default '{}'::jsonb,
  constraint conversion_refresh_runs_status_check check (status in ('ok', 'skipped', 'failed'))
);
create index if not exists conversion_refresh_runs_client_idx
on public.conversion_refresh_runs (client_id, started_at desc);

alter table public.conversion_refresh_runs enable row level security;
revoke all on public.conversion_refresh_runs from anon, authenticated;
grant select on public.conversion_refresh_runs to authenticated;
grant all on public.conversion_refresh_runs to service_role;
drop policy if exists conversion_refresh_runs_member_read on public.conversion_refresh_runs;
create policy conversion_refresh_runs_member_read on public.conversion_refresh_runs
for select to authenticated
using (client_id in (select ci_private.member_client_ids()));

-- Health warnings of one pattern (seed spec 8.3).
create or replace function ci_private.pattern_health(p_pattern jsonb)
returns jsonb
language sql immutable
as $$
  select coalesce(jsonb_agg(w.msg order by w.ord), '[]'::jsonb)
  from (
    select 1 as ord, format('Low sample size: %s', p_pattern ->> 'sample_size') as msg
    where coalesce((p_pattern ->> 'sample_size')::numeric, 0) < 50
    union all
    select 2, format('Low confidence: %s', p_pattern ->> 'confidence')
    where coalesce((p_pattern ->> 'confidence')::numeric, 0) < 0.5
    union all
    select 3, format('Extreme weight for %s: %s', e.key, e.value)
    from jsonb_each(
      case when jsonb_typeof(p_pattern -> 'recommended_weights') = 'object'
        then p_pattern -> 'recommended_weights' else '{}'::jsonb end
    ) as e (key, value)
    where jsonb_typeof(e.value) = 'number' and ((e.value)::numeric > 0.45 or (e.value)::numeric < 0.08)
  ) as w
$$;

-- Outcomes (converted + failed, non-deleted leads) of a client.
create or replace function ci_private.client_outcomes(p_client_id uuid)
returns integer
language sql stable
set search_path = ''
as $$
  select count(*)::integer
  from public.leads as l
  where l.client_id = p_client_id
    and l.deleted_at is null
    and ci_private.lead_outcome(l.status::text) is not null
$$;

-- Store one computed pattern: the current row and a history row.
create or replace function ci_private.store_pattern(
  p_client_id uuid, p_type text, p_pattern jsonb, p_computed_at timestamptz
)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_warnings jsonb := ci_private.pattern_health(p_pattern);
  v_pattern jsonb := p_pattern || jsonb_build_object('health_warnings', v_warnings);
  v_sample integer := greatest(coalesce((p_pattern ->> 'sample_size')::integer, 0), 0);
  v_confidence double precision := least(greatest(coalesce((p_pattern ->> 'confidence')::double precision, 0), 0), 1);
  v_valid_until timestamptz := p_computed_at
    + ci_private.setting('pattern_valid_for')::interval
    + ci_private.setting('pattern_grace')::interval;
begin
  insert into public.conversion_patterns as cp
    (client_id, pattern_type, patterns, sample_size, confidence, computed_at, valid_until)
  values (p_client_id, p_type, v_pattern, v_sample, v_confidence, p_computed_at, v_valid_until)
  on conflict (client_id, pattern_type) do update
    set patterns = excluded.patterns,
        sample_size = excluded.sample_size,
        confidence = excluded.confidence,
        computed_at = excluded.computed_at,
        valid_until = excluded.valid_until;

  insert into public.conversion_pattern_history (client_id, pattern_type, patterns, sample_size, confidence, computed_at)
  values (p_client_id, p_type, v_pattern, v_sample, v_confidence, p_computed_at);

  return jsonb_build_object('sample_size', v_sample, 'confidence', v_confidence, 'warnings', v_warnings);
end
$$;

-- Compute and store all four patterns of a client; all or nothing.
-- security definer: owners and admins may refresh over RPC, but the pattern
-- tables and clients.als_learned_weights are written only by this layer.
create or replace function public.refresh_conversion_patterns(p_client_id uuid)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_now timestamptz;
  v_who jsonb;
  v_what jsonb;
  v_when jsonb;
  v_how jsonb;
  v_summary jsonb := '{}'::jsonb;
  v_learning jsonb;
  v_applied jsonb;
begin
  perform ci_private.assert_client_access(p_client_id, true);
  -- Two refreshes of one client never interleave: the second waits, then
  -- recomputes over the data as it then is.
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('ci_refresh'), pg_catalog.hashtext(p_client_id::text));
  -- The time is read once the lock is held, so the later refresh always
  -- stores the later computed_at.
  v_now := pg_catalog.clock_timestamp();

  -- Content features still missing (rows stored before the layer) read once;
  -- then one shared snapshot of the client's touches for the four detectors.
  perform ci_private.fill_content_features(p_client_id);
  perform ci_private.prepare_touches(p_client_id);
  v_who := public.detect_who_patterns(p_client_id);
  v_what := public.detect_what_patterns(p_client_id);
  v_when := public.detect_when_patterns(p_client_id);
  v_how := public.detect_how_patterns(p_client_id);

  v_summary := jsonb_build_object(
    'who', ci_private.store_pattern(p_client_id, 'who', v_who, v_now),
    'what', ci_private.store_pattern(p_client_id, 'what', v_what, v_now),
    'when', ci_private.store_pattern(p_client_id, 'when', v_when, v_now),
    'how', ci_private.store_pattern(p_client_id, 'how', v_how, v_now)
  );

  -- Learned weights: only when the WHO detector's checks passed.
  v_learning := v_who -> 'weight_learning';
  if coalesce((v_learning ->> 'applied')::boolean, false) then
    v_applied := ci_private.apply_als_weights(p_client_id, v_learning -> 'new_weights', v_learning);
  else
    v_applied := jsonb_build_object('applied', false, 'reason', coalesce(v_learning ->> 'reason', 'no decision'));
  end if;

  update public.clients
  set conversion_sample_count = coalesce((v_who ->> 'sample_size')::integer, 0)
  where id = p_client_id;

  insert into public.conversion_refresh_runs (client_id, started_at, finished_at, status, detail)
  values (p_client_id, v_now, pg_catalog.clock_timestamp(), 'ok', v_summary || jsonb_build_object('weights', v_applied));

  perform pg_catalog.pg_notify(
    'conversion_patterns_refreshed',
    jsonb_build_object('client_id', p_client_id, 'computed_at', v_now)::text
  );

  return jsonb_build_object('client_id', p_client_id, 'status', 'ok', 'computed_at', v_now, 'weights', v_applied)
    || v_summary;
end
$$;

-- Refresh every active client with enough outcomes, each on its own.
-- security definer: run by service_role and the scheduler; it records runs for
-- every client, which no single member could.
create or replace function public.refresh_all_conversion_patterns()
returns jsonb
language plpgsql
security definer
set search_path = ''
set statement_timeout = '4h'
as $$
declare
  v_role text := ci_private.caller_role();
  v_client record;
  v_results jsonb := '[]'::jsonb;
  v_result jsonb;
  v_started timestamptz;
  v_min integer := coalesce(ci_private.setting('min_outcomes')::integer, 30);
  v_outcomes integer;
begin
  if v_role in ('anon', 'authenticated') then
    raise exception 'refresh_all_conversion_patterns is for service_role and the scheduler'
      using errcode = 'insufficient_privilege';
  end if;

  for v_client in
    select c.id from public.clients as c where c.deleted_at is null order by c.id
  loop
    v_started := pg_catalog.clock_timestamp();
    v_outcomes := ci_private.client_outcomes(v_client.id);
    if v_outcomes < v_min then
      v_result := jsonb_build_object(
        'client_id', v_client.id, 'status', 'skipped',
        'reason', format('insufficient outcomes: %s < %s', v_outcomes, v_min)
      );
      insert into public.conversion_refresh_runs (client_id, started_at, finished_at, status, detail)
      values (v_client.id, v_started, pg_catalog.clock_timestamp(), 'skipped', v_result);
    else
      begin
        v_result := public.refresh_conversion_patterns(v_client.id);
      exception when others then
        -- The subtransaction rolls back this client's partial work only.
        v_result := jsonb_build_object(
          'client_id', v_client.id, 'status', 'failed', 'reason', sqlerrm, 'sqlstate', sqlstate
        );
        insert into public.conversion_refresh_runs (client_id, started_at, finished_at, status, detail)
        values (v_client.id, v_started, pg_catalog.clock_timestamp(), 'failed', v_result);
      end;
    end if;
    v_results := v_results || jsonb_build_array(
      jsonb_build_object('client_id', v_client.id, 'status', v_result ->> 'status')
      || case when v_result ? 'reason' then jsonb_build_object('reason', v_result ->> 'reason') else '{}'::jsonb end
    );
  end loop;

  return jsonb_build_object(
    'finished_at', pg_catalog.clock_timestamp(),
    'clients', v_results,
    'ok', (select count(*) from jsonb_array_elements(v_results) as r where r ->> 'status' = 'ok'),
    'skipped', (select count(*) from jsonb_array_elements(v_results) as r where r ->> 'status' = 'skipped'),
    'failed', (select count(*) from jsonb_array_elements(v_results) as r where r ->> 'status' = 'failed')
  );
end
$$;

revoke execute on function ci_private.setting(text) from public, anon, authenticated;
revoke execute on function ci_private.pattern_health(jsonb) from public, anon;
revoke execute on function ci_private.client_outcomes(uuid) from public, anon, authenticated;
revoke execute on function ci_private.store_pattern(uuid, text, jsonb, timestamptz) from public, anon, authenticated;
revoke execute on function public.refresh_conversion_patterns(uuid) from public, anon;
revoke execute on function public.refresh_all_conversion_patterns() from public, anon, authenticated;
grant execute on function ci_private.setting(text) to service_role;
grant execute on function ci_private.pattern_health(jsonb) to authenticated, service_role;
grant execute on function public.refresh_conversion_patterns(uuid) to authenticated, service_role;
grant execute on function public.refresh_all_conversion_patterns() to service_role;
