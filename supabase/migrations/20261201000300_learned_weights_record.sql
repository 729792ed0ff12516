-- apply_learned_weights: strict validation of what the sidecar sends, a stored
-- record of every application with its metrics, and errors that name the
-- problem without echoing the input.
--
-- Before: {"n": -5} was accepted, {"n": 1e12} overflowed an integer cast inside,
-- the metrics were kept nowhere, and an invalid payload came back whole in the
-- error message (a 20 MB body, 20 MB of error). Now the weights and the
-- metrics are checked here, before anything is applied:
--   * p_weights: an object of exactly data_quality, authority, company_fit,
--     timing, each a JSON number (the range and sum rules stay in
--     ci_private.apply_als_weights), at most 1 kB;
--   * p_metrics: null or an object of at most 16 kB whose keys are those of the
--     fit's report (ci_stats.weights.FitDecision.to_json) plus `source`;
--     counts (n, conversions, folds) integers in 0..1e9; confidence and AUCs
--     numbers in [0, 1]; gains, intercept and scale numbers within +-1e6;
--     applied a boolean; status, reason, method strings of at most 500
--     characters; warnings at most 50 strings; fold_gains at most 100 numbers;
--     the weight maps objects of at most the four weight keys with numbers.
-- (JSON numbers are always finite: jsonb refuses NaN and Infinity, so range
-- checks on numeric are enough, and no value is cast to a narrower type.)
-- Each error is 22023 invalid_parameter_value and names the key and the rule;
-- an unknown key is named by its first 40 characters only.

create table if not exists public.conversion_weight_applications (
  id uuid primary key default public.uuid_generate_v7(),
  client_id uuid not null references public.clients (id) on delete cascade,
  applied_at timestamptz not null default pg_catalog.now(),
  applied boolean not null,
  weights jsonb,
  previous_weights jsonb,
  metrics jsonb not null default '{}'::jsonb,
  result jsonb not null default '{}'::jsonb,
  caller_role text not null,
  constraint conversion_weight_applications_metrics_object check (jsonb_typeof(metrics) = 'object')
);
create index if not exists conversion_weight_applications_client_idx
on public.conversion_weight_applications (client_id, applied_at desc);

alter table public.conversion_weight_applications enable row level security;
revoke all on public.conversion_weight_applications from public, anon, authenticated, service_role;
grant select on public.conversion_weight_applications to authenticated, service_role;
drop policy if exists conversion_weight_applications_member_read on public.conversion_weight_applications;
create policy conversion_weight_applications_member_read on public.conversion_weight_applications
for select to authenticated
using (client_id in (select ci_private.member_client_ids()));

-- Raise 22023 with a message naming the problem (never the input).
create or replace function ci_private.weights_input_error(p_message text)
returns void
language plpgsql
set search_path = ''
as $$
begin
  raise exception '%', p_message using errcode = 'invalid_parameter_value';
end
$$;

-- Check p_weights and p_metrics as the top of this file says; raises on the
-- first problem.
create or replace function ci_private.validate_learned_weights_input(p_weights jsonb, p_metrics jsonb)
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_weight_keys constant text [] := array['data_quality', 'authority', 'company_fit', 'timing'];
  v_counts constant text [] := array['n', 'conversions', 'folds'];
  v_unit constant text [] := array['confidence', 'auc_current', 'auc_candidate'];
  v_real constant text [] := array['auc_gain', 'auc_gain_se', 'intercept', 'scale'];
  v_texts constant text [] := array['status', 'reason', 'method', 'source'];
  v_maps constant text [] := array['old_weights', 'new_weights', 'candidate_weights', 'fitted_weights'];
  v_known text [];
  e record;
  x record;
begin
  v_known := v_counts || v_unit || v_real || v_texts || v_maps
    || array['applied', 'warnings', 'fold_gains'];

  if p_weights is null or jsonb_typeof(p_weights) <> 'object' then
    perform ci_private.weights_input_error('weights must be a JSON object');
  end if;
  if pg_catalog.octet_length(p_weights::text) > 1024 then
    perform ci_private.weights_input_error('weights too large: at most 1 kB');
  end if;
  if (select count(*) from jsonb_object_keys(p_weights) as k (key) where k.key <> all(v_weight_keys)) > 0
     or (select count(*) from jsonb_object_keys(p_weights)) <> 4 then
    perform ci_private.weights_input_error(
      'weights must have exactly the keys data_quality, authority, company_fit, timing'
    );
  end if;
  for e in select * from jsonb_each(p_weights) loop
    if jsonb_typeof(e.value) <> 'number' then
      perform ci_private.weights_input_error(format('weights.%s must be a number', e.key));
    end if;
  end loop;

  if p_metrics is null then
    return;
  end if;
  if jsonb_typeof(p_metrics) <> 'object' then
    perform ci_private.weights_input_error('metrics must be a JSON object or null');
  end if;
  if pg_catalog.octet_length(p_metrics::text) > 16384 then
    perform ci_private.weights_input_error('metrics too large: at most 16 kB');
  end if;

  for e in select * from jsonb_each(p_metrics) loop
    if e.key <> all(v_known) then
      perform ci_private.weights_input_error(format('metrics: unknown key %s', left(e.key, 40)));
    elsif jsonb_typeof(e.value) = 'null' then
      continue;
    elsif e.key = any(v_counts) then
      if jsonb_typeof(e.value) <> 'number'
         or (e.value)::numeric <> trunc((e.value)::numeric)
         or (e.value)::numeric < 0 or (e.value)::numeric > 1000000000 then
        perform ci_private.weights_input_error(
          format('metrics.%s must be an integer between 0 and 1000000000', e.key)
        );
      end if;
    elsif e.key = any(v_unit) then
      if jsonb_typeof(e.value) <> 'number' or (e.value)::numeric < 0 or (e.value)::numeric > 1 then
        perform ci_private.weights_input_error(format('metrics.%s must be a number between 0 and 1', e.key));
      end if;
    elsif e.key = any(v_real) then
      if jsonb_typeof(e.value) <> 'number' or abs((e.value)::numeric) > 1000000 then
        perform ci_private.weights_input_error(
          format('metrics.%s must be a number between -1000000 and 1000000', e.key)
        );
      end if;
    elsif e.key = any(v_texts) then
      if jsonb_typeof(e.value) <> 'string' or pg_catalog.char_length(e.value #>> '{}') > 500 then
        perform ci_private.weights_input_error(format('metrics.%s must be a string of at most 500 characters', e.key));
      end if;
    elsif e.key = 'applied' then
      if jsonb_typeof(e.value) <> 'boolean' then
        perform ci_private.weights_input_error('metrics.applied must be a boolean');
      end if;
    elsif e.key = 'warnings' then
      if jsonb_typeof(e.value) <> 'array' or jsonb_array_length(e.value) > 50
         or exists (select 1 from jsonb_array_elements(e.value) as w where jsonb_typeof(w) <> 'string') then
        perform ci_private.weights_input_error('metrics.warnings must be an array of at most 50 strings');
      end if;
    elsif e.key = 'fold_gains' then
      if jsonb_typeof(e.value) <> 'array' or jsonb_array_length(e.value) > 100
         or exists (
           select 1 from jsonb_array_elements(e.value) as g
           where jsonb_typeof(g) <> 'number' or abs(g::numeric) > 1000000
         ) then
        perform ci_private.weights_input_error(
          'metrics.fold_gains must be an array of at most 100 numbers between -1000000 and 1000000'
        );
      end if;
    elsif e.key = any(v_maps) then
      if jsonb_typeof(e.value) <> 'object' then
        perform ci_private.weights_input_error(format('metrics.%s must be an object of weights', e.key));
      end if;
      for x in select * from jsonb_each(e.value) loop
        if x.key <> all(v_weight_keys) or jsonb_typeof(x.value) <> 'number'
           or (x.value)::numeric < 0 or (x.value)::numeric > 1 then
          perform ci_private.weights_input_error(format(
            'metrics.%s must map data_quality, authority, company_fit, timing to numbers between 0 and 1', e.key
          ));
        end if;
      end loop;
    end if;
  end loop;
end
$$;

-- Weights fitted outside the database (the sidecar, on hosted Supabase):
-- validated strictly, applied by ci_private.apply_als_weights (which rescoring
-- the client's leads), and recorded with their metrics.
-- security definer: writes clients.als_learned_weights and the record, which
-- members cannot.
create or replace function public.apply_learned_weights(p_client_id uuid, p_weights jsonb, p_metrics jsonb)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_metrics jsonb;
  v_result jsonb;
begin
  perform ci_private.assert_client_access(p_client_id, true);
  perform ci_private.validate_learned_weights_input(p_weights, p_metrics);
  v_metrics := coalesce(p_metrics, '{}'::jsonb) || jsonb_build_object('source', 'apply_learned_weights');
  v_result := ci_private.apply_als_weights(p_client_id, p_weights, v_metrics);
  insert into public.conversion_weight_applications
    (client_id, applied, weights, previous_weights, metrics, result, caller_role)
  values (
    p_client_id,
    coalesce((v_result ->> 'applied')::boolean, false),
    v_result -> 'weights',
    v_result -> 'previous_weights',
    v_metrics,
    v_result - 'weights' - 'previous_weights',
    ci_private.caller_role()
  );
  return v_result;
end
$$;

revoke execute on function ci_private.weights_input_error(text) from public, anon, authenticated, service_role;
revoke execute on function ci_private.validate_learned_weights_input(jsonb, jsonb)
from public, anon, authenticated, service_role;
revoke execute on function public.apply_learned_weights(uuid, jsonb, jsonb) from public, anon, authenticated, service_role;
grant execute on function public.apply_learned_weights(uuid, jsonb, jsonb) to authenticated, service_role;

comment on function public.apply_learned_weights(uuid, jsonb, jsonb) is
'Applies ALS weights fitted outside the database (the sidecar on hosted Supabase) and rescores the client''s leads. '
'p_weights: {data_quality, authority, company_fit, timing}, numbers, each 0.05-0.50, summing to 0.85. p_metrics: '
'null or the fit''s report (keys n, conversions, folds: integers 0..1e9; confidence, auc_current, auc_candidate: '
'0..1; auc_gain, auc_gain_se, intercept, scale; applied; status, reason, method, source; warnings; fold_gains; '
'old/new/candidate/fitted_weights), at most 16 kB; with applied = false nothing is applied. Returns {applied, '
'weights, previous_weights, rescored, applied_at} or {applied: false, reason}. Every call that passes the checks is '
'recorded in conversion_weight_applications with its metrics. Errors: 22023 naming the key and rule (never echoing '
'the input), 42501 unless owner/admin of the client or service_role.';
