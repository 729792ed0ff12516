-- The refresh no longer runs autovacuum's ANALYZE of the host's tables itself.
--
-- Every reconciliation (so every refresh and backfill) starts with
-- ci_private.analyze_stale_tables (migration 20261201040000). It ran a full
-- ANALYZE of leads, activities or lead_touches when the table had never been
-- analysed, or when more than a fifth of its rows had changed since its last
-- ANALYZE. The second case is autovacuum's own rule (it analyses a table
-- changed by more than autovacuum_analyze_scale_factor, a tenth by default,
-- in the background, within a minute or so). The refresh met it after a week
-- of sends into a small table, and after the rescore job had rescored a large
-- client (104,006 leads written). It then paid for a full ANALYZE of a host
-- table, every column and jsonb included, inside the refresh: 1.43 s of a
-- 105,000-lead client's refresh here, 3.9 s + 4.1 s for leads and
-- activities on a larger table (docs/performance-plans.md). The refresh's
-- plans do not need it: a client the statistics have not seen is caught by
-- ci_private.analyze_unseen_client (migration 20261201070200), which
-- analyses only the columns the layer reads.
--
-- Now a table that was analysed before is analysed for churn only when
-- autovacuum cannot do it: autovacuum or track_counts is off, or the table
-- has autovacuum_enabled = false. A table never analysed (reltuples < 0: a
-- fresh database loaded by COPY) is still analysed at once, in full.

-- Whether a table's statistics need an ANALYZE before the refresh plans over
-- it. p_reltuples: pg_class.reltuples (< 0: never analysed nor vacuumed);
-- p_changed: rows inserted, updated or deleted since its last ANALYZE
-- (pg_stat_all_tables.n_mod_since_analyze); p_autovacuum: whether autovacuum
-- analyses the table by itself.
create or replace function ci_private.statistics_stale(p_reltuples real, p_changed bigint, p_autovacuum boolean)
returns boolean
language sql
immutable
set search_path = ''
as $$
  select p_reltuples < 0
    or (not coalesce(p_autovacuum, false) and coalesce(p_changed, 0) > 0.2 * greatest(p_reltuples, 1000))
$$;

comment on function ci_private.statistics_stale(real, bigint, boolean) is
'Whether a table needs an ANALYZE before the refresh: never analysed (reltuples < 0), or changed by more than a '
'fifth of its rows (at least 200) since its last ANALYZE while autovacuum does not analyse it. Arguments: '
'pg_class.reltuples, pg_stat_all_tables.n_mod_since_analyze, autovacuum_analyses(table).';

-- Whether autovacuum analyses the table by itself: the server runs autovacuum
-- with the statistics counters on, and the table does not opt out.
create or replace function ci_private.autovacuum_analyses(p_table regclass)
returns boolean
language sql
stable
set search_path = ''
as $$
  select pg_catalog.current_setting('autovacuum')::boolean
    and pg_catalog.current_setting('track_counts')::boolean
    and coalesce((
      select o.option_value::boolean
      from pg_catalog.pg_class as c
      cross join lateral pg_catalog.pg_options_to_table(c.reloptions) as o
      where c.oid = p_table and o.option_name = 'autovacuum_enabled'
    ), true)
$$;

comment on function ci_private.autovacuum_analyses(regclass) is
'True when autovacuum analyses the table by itself: the settings autovacuum and track_counts are on and the table '
'has no autovacuum_enabled = false storage parameter.';

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
      and ci_private.statistics_stale(c.reltuples, s.n_mod_since_analyze, ci_private.autovacuum_analyses(c.oid))
  loop
    execute format('analyze %s', v_rel.name);
    v_done := v_done + 1;
  end loop;
  return v_done;
end
$$;

comment on function ci_private.analyze_stale_tables() is
'Runs a full ANALYZE of leads, activities and ci_private.lead_touches where statistics_stale says so (never '
'analysed; or changed by more than a fifth while autovacuum does not analyse the table). Returns how many it '
'analysed. A client the statistics have not seen is analyze_unseen_client''s. Called by before_reconcile.';

revoke execute on function ci_private.statistics_stale(real, bigint, boolean) from public, anon, authenticated;
revoke execute on function ci_private.autovacuum_analyses(regclass) from public, anon, authenticated;
revoke execute on function ci_private.analyze_stale_tables() from public, anon, authenticated;
