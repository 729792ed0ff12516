-- Learning the ALS weights in the database (issue 3, seed spec 4.1 corrected).
-- ci_private.who_lead_counts: one pass over a client's leads with an outcome,
--   as of each lead's first outbound touch, counted by the lead profile (title,
--   industry, size band, timing signals) and by the components and fold.
-- ci_private.who_lead_groups: those counts with each title's components, the
--   learning rows regrouped by components, risk and outcome with their count in
--   each fold, so a million leads reach Python as a few thousand rows.
-- ci_private.als_learning_rows: the learning rows alone (the sidecar's input).
-- ci_private.fit_als_weights: a thin PL/Python adapter over the plain Python
--   module plpython/ci_stats/weights.py (numpy + scipy), created only where
--   plpython3u exists (hosted Supabase lacks it: the sidecar runs the same
--   module and applies through public.apply_learned_weights).
-- ci_private.apply_als_weights: validates weights, stores them on the client
--   and rescores the client's leads in one statement.

-- The out-of-sample check uses 5 deterministic folds: a lead's fold is a hash
-- of its id (it never changes between refreshes); ci_private.als_learning_rows
-- counts the leads of each fold.
create or replace function ci_private.als_learning_fold(p_lead_id uuid)
returns integer
language sql immutable parallel safe
as $$
  select ((uuid_hash_extended(p_lead_id, 0) % 5 + 5) % 5)::integer
$$;

-- Lower bounds of the company-size bands of the WHO size analysis: the seed's
-- 1-5, 6-15, 16-30, 31-50, 51-100, 101-500, and 501+ above them.
create or replace function ci_private.who_size_thresholds()
returns integer []
language sql immutable parallel safe
as $$
  select '{1, 6, 16, 31, 51, 101, 501}'::integer []
$$;

-- Size band (1..7) of an employee count; null when unknown or not positive.
create or replace function ci_private.who_size_band(p_employee_count integer)
returns integer
language sql immutable parallel safe
as $$
  select nullif(width_bucket(p_employee_count, ci_private.who_size_thresholds()), 0)
$$;

-- Leads of a client with an outcome (contract section 3: converted 1, failed
-- 0; open leads are censored and left out), non-deleted, counted in one pass
-- by the two groupings the WHO detector and the weight learning need, as of
-- their first outbound touch (no touch: as of their creation):
--   the profile (learning false): raw title, raw industry, size band, the
--     timing signals (new role, hiring, funded), outcome;
--   the learning (learning true): raw title, data quality, company fit,
--     timing, fold (ci_private.als_learning_fold), outcome.
-- The components come from the one definition of the rules,
-- ci_private.als_parts_of, with the title inputs null: the title's own
-- components (authority, risk) are joined per distinct title by
-- ci_private.who_lead_groups, so the title rules run once per spelling.
-- As of the first touch the lead had no outcome yet: its risk counts only the
-- title (a junior title), not its status nor its bounce count, which record
-- what happened after (a bounce or an unsubscribe is a failure itself, and
-- would let the learning see the outcome it is to predict).
-- The as-of date (UTC) is the lead's first outbound send on any channel
-- (contract section 3): for a client whose touches are kept on write
-- (ci_private.lead_touches, lead_touches migration), its first kept touch (a
-- small partial index) or an earlier send on a channel the detectors do not
-- know (few, their own partial index); for a client not yet built, its
-- earliest outbound send in the activities.
-- PL/pgSQL for three reasons: the table comes from a later migration; the
-- client's ICP keys are read once into variables (a join to the client row
-- put their normalisation in every lead's expression); and RETURN QUERY may
-- run in parallel workers (two cores halve the pass), which an SQL function
-- inlined into its caller's CTEs may not. Custom plans, so that the branch
-- for built clients reads only the unknown-channel index; work_mem for the
-- first touches' hash (64 MB at 1M leads) and the grouping. The components
-- are separate outputs of their lateral subquery: grouping sets wrap
-- subquery outputs, and a wrapped row would be computed once per field.
drop function if exists ci_private.who_lead_facts(uuid);
drop function if exists ci_private.lead_first_touch_dates(uuid);
drop function if exists ci_private.als_learning_rows(uuid);
drop function if exists ci_private.who_lead_groups(uuid);
create or replace function ci_private.who_lead_counts(p_client_id uuid)
returns table (
  learning boolean,
  title text,
  industry text,
  size_band integer,
  new_role boolean,
  hiring boolean,
  funded boolean,
  data_quality integer,
  company_fit integer,
  timing integer,
  fold integer,
  converted integer,
  leads bigint
)
language plpgsql stable
set plan_cache_mode = force_custom_plan
set work_mem = '256MB'
as $$
declare
  v_industries text [];
  v_sizes int4multirange;
  v_locations text [];
  v_built boolean;
begin
  select k.industries, k.sizes, k.locations into v_industries, v_sizes, v_locations
  from public.clients as c
  cross join lateral ci_private.als_context(c) as k
  where c.id = p_client_id;
  v_built := exists (select 1 from ci_private.lead_touches_built as b where b.client_id = p_client_id);

  return query
  select
    grouping(l.organization_industry) = 1,
    l.title,
    l.organization_industry,
    ci_private.who_size_band(l.organization_employee_count),
    ci_private.als_role_points(l.employment_start_date, d.as_of) = 6,
    coalesce(l.organization_is_hiring, false),
    ci_private.als_funding_points(l.organization_latest_funding_date, d.as_of) = 4,
    p.data_quality,
    p.company_fit,
    p.timing,
    ci_private.als_learning_fold(l.id),
    ci_private.lead_outcome(l.status::text),
    count(*)
  from public.leads as l
  left join (
    select k.lead_id, k.created_at
    from ci_private.lead_touches as k
    where v_built and k.client_id = p_client_id and k.touch_no = 1
  ) as f on f.lead_id = l.id
  left join (
    select a.lead_id, min(a.created_at) as created_at
    from public.activities as a
    where a.client_id = p_client_id
      and ci_private.is_outbound_action(a.action)
      and (not v_built or ci_private.channel_code(a.channel) is null)
    group by a.lead_id
  ) as u on u.lead_id = l.id
  cross join lateral (
    select (coalesce(least(f.created_at, u.created_at), l.created_at) at time zone 'UTC')::date as as_of
  ) as d
  cross join lateral (
    select (x.parts).data_quality, (x.parts).company_fit, (x.parts).timing
    from (
      select ci_private.als_parts_of(
        null, null, l.email, l.email_verified, l.phone, l.phone_verified, l.linkedin_url,
        l.personal_email, l.organization_industry, l.organization_employee_count, l.organization_country,
        l.organization_is_hiring, l.organization_latest_funding_date, l.employment_start_date,
        null, null, v_industries, v_sizes, v_locations, d.as_of
      ) as parts
    ) as x
  ) as p
  where l.client_id = p_client_id
    and l.deleted_at is null
    and ci_private.lead_outcome(l.status::text) is not null
  group by grouping sets (
    (2, 3, 4, 5, 6, 7, 12),
    (2, 8, 9, 10, 11, 12)
  );
end
$$;

-- The WHO detector's and the learning's input: the counts of
-- ci_private.who_lead_counts with each distinct title normalised and scored
-- once (its authority and risk, the components that depend only on the title
-- here, from ci_private.als_parts_of with only the title inputs). Profile rows
-- (learning false) keep the raw title and industry with their comparison
-- keys; learning rows (learning true) are regrouped by the five components,
-- risk and outcome, with their leads in each of the 5 folds, so a million
-- leads reach the fit as a few thousand rows.
create or replace function ci_private.who_lead_groups(p_client_id uuid)
returns table (
  learning boolean,
  title text,
  title_key text,
  industry text,
  industry_key text,
  size_band integer,
  new_role boolean,
  hiring boolean,
  funded boolean,
  data_quality integer,
  authority integer,
  company_fit integer,
  timing integer,
  risk integer,
  converted integer,
  leads bigint,
  fold_counts integer []
)
language sql stable
as $$
  with counts as materialized (
    select c.* from ci_private.who_lead_counts(p_client_id) as c
  ),
  titles as materialized (
    select d.title, n.title_key, (r.parts).authority, (r.parts).risk
    from (select distinct coalesce(c.title, '') as title from counts as c) as d
    cross join lateral (select ci_private.normalize_title(d.title) as title_key offset 0) as n
    cross join lateral (
      select ci_private.als_parts_of(
        ci_private.als_authority_points(' ' || n.title_key || ' '), ci_private.als_junior_points(' ' || n.title_key || ' '),
        null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null
      ) as parts
      offset 0
    ) as r
  ),
  titled as (
    select c.*, t.title_key, t.authority, t.risk
    from counts as c
    inner join titles as t on t.title = coalesce(c.title, '')
  )
  select
    false, g.title, g.title_key, g.industry, ci_private.text_key(g.industry), g.size_band, g.new_role, g.hiring,
    g.funded, null, null, null, null, null, g.converted, g.leads, null
  from titled as g
  where not g.learning
  union all
  select
    true, null, null, null, null, null, null, null, null,
    g.data_quality, g.authority, g.company_fit, g.timing, g.risk, g.converted, sum(g.leads)::bigint,
    array[
      coalesce(sum(g.leads) filter (where g.fold = 0), 0), coalesce(sum(g.leads) filter (where g.fold = 1), 0),
      coalesce(sum(g.leads) filter (where g.fold = 2), 0), coalesce(sum(g.leads) filter (where g.fold = 3), 0),
      coalesce(sum(g.leads) filter (where g.fold = 4), 0)
    ]::integer []
  from titled as g
  where g.learning
  group by g.data_quality, g.authority, g.company_fit, g.timing, g.risk, g.converted
$$;

-- The learning data of a client: its leads with an outcome grouped by
-- components, risk and outcome, with the number of leads in each of the 5 folds
-- (the learning rows of ci_private.who_lead_groups). The sidecar reads it where
-- the database cannot fit (no PL/Python).
create or replace function ci_private.als_learning_rows(p_client_id uuid)
returns table (
  data_quality integer,
  authority integer,
  company_fit integer,
  timing integer,
  risk integer,
  converted integer,
  fold_counts integer []
)
language sql stable
as $$
  select g.data_quality, g.authority, g.company_fit, g.timing, g.risk, g.converted, g.fold_counts
  from ci_private.who_lead_groups(p_client_id) as g
  where g.learning
$$;

-- The weight fit, where PL/Python is available: the columns of
-- ci_private.als_learning_rows as arrays (p_fold_counts two-dimensional: one row
-- of fold counts per group), the decision out (see
-- ci_stats.weights.WeightDecision.to_json). Never raises on data.
do $fit$
begin
  if exists (select 1 from pg_catalog.pg_extension where extname = 'plpython3u') then
    execute $create$
      create or replace function ci_private.fit_als_weights(
        p_data_quality integer [],
        p_authority integer [],
        p_company_fit integer [],
        p_timing integer [],
        p_risk integer [],
        p_converted integer [],
        p_fold_counts integer [],
        p_current jsonb,
        p_confidence double precision,
        p_options jsonb default '{}'::jsonb
      )
      returns jsonb
      language plpython3u
      stable
      as $py$
import ci_stats.plpy_adapter as adapter
return adapter.fit_als_weights(
    plpy, p_data_quality, p_authority, p_company_fit, p_timing, p_risk, p_converted, p_fold_counts,
    p_current, p_confidence, p_options,
)
$py$
    $create$;
    revoke execute on function ci_private.fit_als_weights(
      integer [], integer [], integer [], integer [], integer [], integer [], integer [],
      jsonb, double precision, jsonb
    ) from public, anon, authenticated;
    grant execute on function ci_private.fit_als_weights(
      integer [], integer [], integer [], integer [], integer [], integer [], integer [],
      jsonb, double precision, jsonb
    ) to service_role;
  else
    raise notice 'plpython3u not installed: ci_private.fit_als_weights not created (the sidecar fits the weights)';
  end if;
end
$fit$;

-- Is the in-database weight fit available here?
create or replace function ci_private.als_fit_available()
returns boolean
language sql stable
as $$
  select pg_catalog.to_regprocedure(
    'ci_private.fit_als_weights(integer[], integer[], integer[], integer[], integer[], integer[], integer[], '
    || 'jsonb, double precision, jsonb)'
  ) is not null
$$;

-- Validate weights, store them on the client (at 4 decimals, the precision
-- the scorer uses) and rescore the client's leads in one statement.
-- p_decision: the record of why (the WHO pattern's weight_learning, or the
-- sidecar's metrics); a decision that says applied = false is not applied.
-- Invalid weights raise (invalid_parameter_value): the caller made a mistake.
-- security definer: writes clients.als_learned_weights and the scores, which
-- the layer alone writes; the caller's right to write the client is checked.
create or replace function ci_private.apply_als_weights(p_client_id uuid, p_weights jsonb, p_decision jsonb)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_old jsonb;
  v_new jsonb;
  v_rescored integer;
  v_sample integer;
begin
  perform ci_private.assert_client_access(p_client_id, true);
  if jsonb_typeof(p_decision -> 'applied') = 'boolean' and not (p_decision ->> 'applied')::boolean then
    return jsonb_build_object(
      'applied', false,
      'reason', 'the decision says not applied: ' || coalesce(p_decision ->> 'reason', 'no reason given')
    );
  end if;
  if not ci_private.als_valid_weights(p_weights) then
    raise exception 'invalid ALS weights %', coalesce(p_weights::text, 'null')
      using errcode = 'invalid_parameter_value',
      hint = 'four numbers data_quality, authority, company_fit, timing, each in [0.05, 0.50], summing to 0.85';
  end if;

  v_new := ci_private.als_quantize_weights(p_weights);
  v_sample := case
    when jsonb_typeof(p_decision -> 'n') = 'number' then (p_decision ->> 'n')::numeric::integer
  end;
  select ci_private.als_weights_in_force(c.als_learned_weights) into v_old
  from public.clients as c
  where c.id = p_client_id
  for update;

  update public.clients
  set als_learned_weights = v_new,
    als_weights_updated_at = pg_catalog.now(),
    conversion_sample_count = coalesce(v_sample, conversion_sample_count)
  where id = p_client_id;

  v_rescored := ci_private.rescore_leads(p_client_id);
  return jsonb_build_object(
    'applied', true,
    'weights', v_new,
    'previous_weights', v_old,
    'rescored', v_rescored,
    'applied_at', pg_catalog.now()
  );
end
$$;

revoke execute on function ci_private.als_learning_fold(uuid) from public, anon;
revoke execute on function ci_private.who_size_band(integer) from public, anon;
revoke execute on function ci_private.who_size_thresholds() from public, anon;
revoke execute on function ci_private.who_lead_groups(uuid) from public, anon, authenticated;
revoke execute on function ci_private.who_lead_counts(uuid) from public, anon, authenticated;
revoke execute on function ci_private.als_learning_rows(uuid) from public, anon, authenticated;
revoke execute on function ci_private.als_fit_available() from public, anon;
revoke execute on function ci_private.apply_als_weights(uuid, jsonb, jsonb) from public, anon, authenticated;
grant execute on function ci_private.als_learning_fold(uuid) to authenticated, service_role;
grant execute on function ci_private.who_size_band(integer) to authenticated, service_role;
grant execute on function ci_private.who_size_thresholds() to authenticated, service_role;
grant execute on function ci_private.who_lead_groups(uuid) to service_role;
grant execute on function ci_private.who_lead_counts(uuid) to service_role;
grant execute on function ci_private.als_learning_rows(uuid) to service_role;
grant execute on function ci_private.als_fit_available() to authenticated, service_role;
grant execute on function ci_private.apply_als_weights(uuid, jsonb, jsonb) to service_role;
