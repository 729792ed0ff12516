-- One privilege model for the layer's functions: EXECUTE is revoked from
-- everyone, then granted per signature, here, explicitly; no sweep.
--
-- Until now two sources of truth disagreed: each migration revoked and granted
-- its own functions, and the released 20261127039000_privileges.sql then swept
-- ci_private and granted EXECUTE to authenticated on every SQL and PL/pgSQL
-- helper, among them helpers that their own files had revoked from
-- authenticated (ci_private.setting, store_pattern, client_outcomes,
-- pattern_json, schedule_jobs, who_lead_counts, ...). The per-schema
-- `alter default privileges in schema ci_private revoke execute on functions
-- from public` of 20261127000100 never took effect either: a per-schema default
-- can add grants but not remove PostgreSQL's global EXECUTE for PUBLIC.
--
-- The final grants of every function of the first release are therefore listed
-- below, signature by signature:
--   * nothing for PUBLIC or anon, anywhere;
--   * trigger functions: nobody but the owner (a trigger's function is not
--     checked for EXECUTE when it fires);
--   * helpers that run in the caller's own context (the scoring and rule
--     helpers that invoker triggers, views and policies call, the RLS helpers
--     member_client_ids and admin_client_ids, the keyword queries of a generated
--     column): authenticated and service_role, as the sweep left them;
--   * helpers that their own migration revoked from authenticated (security
--     definer work, the refresh's internals, settings, the scheduler): as their
--     own migration granted them, without the sweep's grant to authenticated;
--   * the public API: as contract section 6 says (refresh_all: service_role).
-- The host's default privileges are left as they are (contract section 1: a
-- host object): on hosted Supabase every function created in public is
-- granted to anon, authenticated and service_role by default, so every
-- function of the layer must be revoked and granted explicitly, as below and
-- in every later migration. ci_private.apply_privileges() stays (later
-- migrations may call it) but only revokes from PUBLIC and anon now.

-- The sweep, defused: it takes away PUBLIC's and anon's EXECUTE and grants nothing.
create or replace function ci_private.apply_privileges()
returns integer
language plpgsql
set search_path = ''
as $$
declare
  f record;
  n integer := 0;
begin
  for f in
    select p.oid::regprocedure as sig
    from pg_catalog.pg_proc as p
    where p.pronamespace = 'ci_private'::regnamespace
      and not exists (
        select 1 from pg_catalog.pg_depend as d
        where d.classid = 'pg_catalog.pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e'
      )
  loop
    execute format('revoke execute on routine %s from public, anon', f.sig);
    n := n + 1;
  end loop;
  return n;
end
$$;

revoke execute on all functions in schema ci_private from public, anon, authenticated, service_role;

grant execute on function ci_private.admin_client_ids() to authenticated, service_role;
grant execute on function ci_private.als_authority_points(text) to authenticated, service_role;
grant execute on function ci_private.als_components(
  text,
  boolean,
  text,
  boolean,
  text,
  text,
  text,
  text,
  integer,
  text,
  boolean,
  date,
  date,
  integer,
  text,
  text [],
  int4multirange,
  text [],
  date
) to authenticated, service_role;
grant execute on function ci_private.als_context(public.clients) to authenticated, service_role;
grant execute on function ci_private.als_default_weights() to authenticated, service_role;
grant execute on function ci_private.als_fit_available() to authenticated, service_role;
grant execute on function ci_private.als_funding_points(date, date) to authenticated, service_role;
grant execute on function ci_private.als_junior_points(text) to authenticated, service_role;
grant execute on function ci_private.als_learning_fold(uuid) to authenticated, service_role;
grant execute on function ci_private.als_learning_rows(uuid) to service_role;
grant execute on function ci_private.als_parts_of(
  integer,
  integer,
  text,
  boolean,
  text,
  boolean,
  text,
  text,
  text,
  integer,
  text,
  boolean,
  date,
  date,
  integer,
  text,
  text [],
  int4multirange,
  text [],
  date
) to authenticated, service_role;
grant execute on function ci_private.als_quantize_weights(jsonb) to authenticated, service_role;
grant execute on function ci_private.als_role_points(date, date) to authenticated, service_role;
grant execute on function ci_private.als_score(
  integer, integer, integer, integer, integer, integer []
) to authenticated, service_role;
grant execute on function ci_private.als_snapshot(ci_private.als_parts) to authenticated, service_role;
grant execute on function ci_private.als_tier(integer) to authenticated, service_role;
grant execute on function ci_private.als_today() to authenticated, service_role;
grant execute on function ci_private.als_valid_weights(jsonb) to authenticated, service_role;
grant execute on function ci_private.als_weight_units(jsonb) to authenticated, service_role;
grant execute on function ci_private.als_weights_in_force(jsonb) to authenticated, service_role;
grant execute on function ci_private.apply_als_weights(uuid, jsonb, jsonb) to service_role;
grant execute on function ci_private.assert_client_access(uuid, boolean) to authenticated, service_role;
grant execute on function ci_private.backfill_converting_touches(uuid) to service_role;
grant execute on function ci_private.caller_role() to authenticated, service_role;
grant execute on function ci_private.channel_code(public.channel_type) to authenticated, service_role;
grant execute on function ci_private.channel_count(integer) to authenticated, service_role;
grant execute on function ci_private.channel_name(integer) to authenticated, service_role;
grant execute on function ci_private.client_keywords(uuid) to authenticated, service_role;
grant execute on function ci_private.client_outcomes(uuid) to service_role;
grant execute on function ci_private.content_digest(ci_private.content_features, text) to service_role;
grant execute on function ci_private.content_features_of(jsonb) to authenticated, service_role;
grant execute on function ci_private.content_key_of(uuid, ci_private.content_features, text) to service_role;
grant execute on function ci_private.day_name(integer) to authenticated, service_role;
grant execute on function ci_private.derive_content_snapshot(
  uuid, uuid, text, text, jsonb
) to authenticated, service_role;
grant execute on function ci_private.derive_content_snapshot_safe(
  uuid, uuid, text, text, jsonb
) to authenticated, service_role;
grant execute on function ci_private.derive_content_snapshots(uuid, boolean) to service_role;
grant execute on function ci_private.enough_data(bigint, bigint) to authenticated, service_role;
grant execute on function ci_private.ensure_lead_touches(uuid, boolean) to service_role;
grant execute on function ci_private.ensure_touches(uuid) to service_role;
grant execute on function ci_private.fill_content_features(uuid) to service_role;
grant execute on function ci_private.how_patterns() to service_role;
grant execute on function ci_private.icp_size_ranges(text []) to authenticated, service_role;
grant execute on function ci_private.is_conversion_action(text) to authenticated, service_role;
grant execute on function ci_private.is_failed_status(text) to authenticated, service_role;
grant execute on function ci_private.is_outbound_action(text) to authenticated, service_role;
grant execute on function ci_private.json_bool(jsonb) to authenticated, service_role;
grant execute on function ci_private.json_int(jsonb) to authenticated, service_role;
grant execute on function ci_private.json_text(jsonb) to authenticated, service_role;
grant execute on function ci_private.json_type_is(jsonb, text) to authenticated, service_role;
grant execute on function ci_private.jsonb_array_head(jsonb, integer) to authenticated, service_role;
grant execute on function ci_private.keyword_labels(uuid, text) to authenticated, service_role;
grant execute on function ci_private.keyword_queries(text []) to authenticated, service_role;
grant execute on function ci_private.label_array(jsonb) to authenticated, service_role;
grant execute on function ci_private.label_text(
  jsonb, jsonb, jsonb, jsonb, jsonb, jsonb, jsonb, jsonb
) to authenticated, service_role;
grant execute on function ci_private.lead_outcome(text) to authenticated, service_role;
grant execute on function ci_private.length_bucket(integer, integer, integer) to authenticated, service_role;
grant execute on function ci_private.member_client_ids() to authenticated, service_role;
grant execute on function ci_private.needed_label_text(ci_private.content_features, jsonb) to service_role;
grant execute on function ci_private.normal_quantile(double precision) to authenticated, service_role;
grant execute on function ci_private.normalize_label(text) to authenticated, service_role;
grant execute on function ci_private.normalize_template(text) to authenticated, service_role;
grant execute on function ci_private.normalize_title(text) to authenticated, service_role;
grant execute on function ci_private.optimal_length(jsonb, text) to authenticated, service_role;
grant execute on function ci_private.pattern_confidence(bigint) to authenticated, service_role;
grant execute on function ci_private.pattern_envelope(text, bigint, bigint, text) to authenticated, service_role;
grant execute on function ci_private.pattern_health(jsonb) to authenticated, service_role;
grant execute on function ci_private.pattern_json(public.conversion_patterns) to service_role;
grant execute on function ci_private.prepare_touches(uuid) to service_role;
grant execute on function ci_private.rate_table(
  jsonb, double precision, integer, double precision
) to authenticated, service_role;
grant execute on function ci_private.rebuild_lead_touches(uuid) to service_role;
grant execute on function ci_private.refresh_als_context(uuid) to authenticated, service_role;
grant execute on function ci_private.refresh_timezone_names() to service_role;
grant execute on function ci_private.rescore_leads(uuid, uuid) to service_role;
grant execute on function ci_private.schedule_jobs() to service_role;
grant execute on function ci_private.sequence_channels(integer, integer) to authenticated, service_role;
grant execute on function ci_private.sequence_prefix(integer, integer) to authenticated, service_role;
grant execute on function ci_private.setting(text) to service_role;
grant execute on function ci_private.shares_of_100(jsonb) to authenticated, service_role;
grant execute on function ci_private.significant(jsonb, text) to authenticated, service_role;
grant execute on function ci_private.snapshot_label_text(jsonb) to authenticated, service_role;
grant execute on function ci_private.store_pattern(uuid, text, jsonb, timestamp with time zone) to service_role;
grant execute on function ci_private.templatize(text, text, text, text, text, text) to authenticated, service_role;
grant execute on function ci_private.text_bool(text) to authenticated, service_role;
grant execute on function ci_private.text_key(text) to authenticated, service_role;
grant execute on function ci_private.text_keys(text []) to authenticated, service_role;
grant execute on function ci_private.tier_channels(text) to authenticated, service_role;
grant execute on function ci_private.tier_code(text) to authenticated, service_role;
grant execute on function ci_private.tier_name(integer) to authenticated, service_role;
grant execute on function ci_private.what_patterns(uuid) to service_role;
grant execute on function ci_private.when_patterns() to service_role;
grant execute on function ci_private.who_confidence(bigint) to authenticated, service_role;
grant execute on function ci_private.who_insufficient(bigint, bigint, jsonb, text) to authenticated, service_role;
grant execute on function ci_private.who_lead_counts(uuid) to service_role;
grant execute on function ci_private.who_lead_groups(uuid) to service_role;
grant execute on function ci_private.who_signal_lift(jsonb, text) to authenticated, service_role;
grant execute on function ci_private.who_size_band(integer) to authenticated, service_role;
grant execute on function ci_private.who_size_bands() to authenticated, service_role;
grant execute on function ci_private.who_size_thresholds() to authenticated, service_role;
grant execute on function ci_private.winner_rule() to authenticated, service_role;

-- Created only where plpython3u is (not on hosted Supabase).
do $fit$
begin
  if pg_catalog.to_regprocedure(
    'ci_private.fit_als_weights(' || 'integer[],integer[],integer[],integer[],integer[],integer[],integer[],jsonb,double precision,jsonb' || ')'
  ) is not null then
    grant execute on function ci_private.fit_als_weights(
      integer[],
      integer[],
      integer[],
      integer[],
      integer[],
      integer[],
      integer[],
      jsonb,
      double precision,
      jsonb
    ) to service_role;
  end if;
end
$fit$;

-- The public API of the first release (contract section 6), per signature:
-- members' functions to authenticated and service_role; refresh_all to
-- service_role only. Never a revoke over the whole schema: public holds the
-- host's functions too.
revoke execute on function public.apply_learned_weights(uuid, jsonb, jsonb) from public, anon, authenticated, service_role;
revoke execute on function public.detect_how_patterns(uuid) from public, anon, authenticated, service_role;
revoke execute on function public.detect_what_patterns(uuid) from public, anon, authenticated, service_role;
revoke execute on function public.detect_when_patterns(uuid) from public, anon, authenticated, service_role;
revoke execute on function public.detect_who_patterns(uuid) from public, anon, authenticated, service_role;
revoke execute on function public.get_conversion_patterns(uuid) from public, anon, authenticated, service_role;
revoke execute on function public.get_pattern_history(uuid, text, integer) from public, anon, authenticated, service_role;
revoke execute on function public.recommended_channel_allocation(uuid, text) from public, anon, authenticated, service_role;
revoke execute on function public.refresh_conversion_patterns(uuid) from public, anon, authenticated, service_role;
revoke execute on function public.rescore_client_leads(uuid) from public, anon, authenticated, service_role;
revoke execute on function public.score_lead(uuid) from public, anon, authenticated, service_role;
revoke execute on function public.refresh_all_conversion_patterns() from public, anon, authenticated, service_role;
grant execute on function public.apply_learned_weights(uuid, jsonb, jsonb) to authenticated, service_role;
grant execute on function public.detect_how_patterns(uuid) to authenticated, service_role;
grant execute on function public.detect_what_patterns(uuid) to authenticated, service_role;
grant execute on function public.detect_when_patterns(uuid) to authenticated, service_role;
grant execute on function public.detect_who_patterns(uuid) to authenticated, service_role;
grant execute on function public.get_conversion_patterns(uuid) to authenticated, service_role;
grant execute on function public.get_pattern_history(uuid, text, integer) to authenticated, service_role;
grant execute on function public.recommended_channel_allocation(uuid, text) to authenticated, service_role;
grant execute on function public.refresh_conversion_patterns(uuid) to authenticated, service_role;
grant execute on function public.rescore_client_leads(uuid) to authenticated, service_role;
grant execute on function public.score_lead(uuid) to authenticated, service_role;
grant execute on function public.refresh_all_conversion_patterns() to service_role;

-- A session's claims never raise it above its database role. The database
-- role of the session is the role it SET (PostgREST: `set local role
-- authenticated`), else the role it logged in as; security definer functions
-- change neither, so this holds inside them too. The JWT role claim may lower
-- that (service_role acting for a user), never raise it: a raw session in role
-- authenticated whose claims say service_role is authenticated. Ranks: anon <
-- authenticated < service_role < any other database role (postgres, pg_cron's
-- jobs: trusted, as before); a claim naming no API role counts as anon. A
-- session that logged in as PostgREST's authenticator and switched to no role
-- is anon, as before.
create or replace function ci_private.caller_role()
returns text
language sql stable
set search_path = ''
as $$
  with s as (
    select
      case
        when pg_catalog.current_setting('role') <> 'none' then pg_catalog.current_setting('role')
        when session_user::text = 'authenticator' then 'anon'
        else session_user::text
      end as db_role,
      nullif(auth.role(), '') as claim
  ),
  r as (
    select s.db_role, s.claim,
      case s.db_role when 'anon' then 0 when 'authenticated' then 1 when 'service_role' then 2 else 3 end as db_rank,
      case
        when s.claim is null then null
        when s.claim = 'anon' then 0
        when s.claim = 'authenticated' then 1
        when s.claim = 'service_role' then 2
        else 0
      end as claim_rank
    from s
  )
  select case
    when r.claim_rank is null or r.claim_rank >= r.db_rank then r.db_role
    else (array['anon', 'authenticated', 'service_role'])[r.claim_rank + 1]
  end
  from r
$$;

revoke execute on function ci_private.caller_role() from public, anon, authenticated, service_role;
grant execute on function ci_private.caller_role() to authenticated, service_role;

-- The pattern history is append only for every role, service_role included,
-- and against TRUNCATE too: Supabase's default privileges give service_role
-- every privilege on a new table in public (TRUNCATE among them), and a
-- truncate fires no row trigger. The privileges are taken away and a statement
-- trigger refuses a TRUNCATE by anyone, the owner too. The row trigger and
-- this one fire in replica-mode sessions as well (enabled ALWAYS).
revoke update, delete, truncate, references, trigger on public.conversion_pattern_history
from public, anon, authenticated, service_role;

create or replace function ci_private.forbid_history_truncate()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  raise exception 'conversion_pattern_history is append only (TRUNCATE refused)'
    using errcode = 'insufficient_privilege';
end
$$;

revoke execute on function ci_private.forbid_history_truncate() from public, anon, authenticated, service_role;

drop trigger if exists conversion_pattern_history_no_truncate on public.conversion_pattern_history;
create trigger conversion_pattern_history_no_truncate
before truncate on public.conversion_pattern_history
for each statement execute function ci_private.forbid_history_truncate();
alter table public.conversion_pattern_history enable always trigger conversion_pattern_history_no_truncate;
alter table public.conversion_pattern_history enable always trigger conversion_pattern_history_append_only;
