-- public.apply_learned_weights: strict validation of the weights and metrics,
-- errors that name the problem without echoing the input, a stored record of
-- every application with its metrics.
begin;
select plan(16);

create temp table ids as
select gen_random_uuid() as client_a, gen_random_uuid() as admin_a, gen_random_uuid() as viewer_a;
grant select on ids to public;
insert into auth.users (id) select unnest(array[admin_a, viewer_a]) from ids;
insert into public.clients (id, name) select client_a, 'Weights client A' from ids;
insert into public.memberships (user_id, client_id, role, accepted_at)
select admin_a, client_a, 'admin'::public.membership_role, now() from ids
union all select viewer_a, client_a, 'viewer', now() from ids;

create function pg_temp.apply(p_metrics text) returns text language sql as $$
  select format('select public.apply_learned_weights(%L, %L, %L)', (select client_a from ids),
    '{"data_quality": 0.2, "authority": 0.3, "company_fit": 0.2, "timing": 0.15}', p_metrics)
$$;

set local role service_role;
select set_config('request.jwt.claims', '{"role": "service_role"}', true);

select throws_ok(pg_temp.apply('{"n": -5}'), '22023',
  'metrics.n must be an integer between 0 and 1000000000', 'n = -5 refused');
select throws_ok(pg_temp.apply('{"n": 1e12}'), '22023',
  'metrics.n must be an integer between 0 and 1000000000', 'n = 1e12 refused (no overflow)');
select throws_ok(pg_temp.apply('{"n": 12.5}'), '22023',
  'metrics.n must be an integer between 0 and 1000000000', 'a fractional count refused');
select throws_ok(pg_temp.apply('{"n": "300"}'), '22023',
  'metrics.n must be an integer between 0 and 1000000000', 'a count as a string refused');
select throws_ok(pg_temp.apply('{"confidence": 1.5}'), '22023',
  'metrics.confidence must be a number between 0 and 1', 'confidence above 1 refused');
select throws_ok(pg_temp.apply('{"auc_gain": 1e400}'), '22023',
  'metrics.auc_gain must be a number between -1000000 and 1000000', 'a huge number refused');
select throws_ok(pg_temp.apply('{"surprise": 1}'), '22023',
  'metrics: unknown key surprise', 'an unknown key refused, named');
select throws_ok(pg_temp.apply('[1, 2]'), '22023', 'metrics must be a JSON object or null',
  'metrics that are not an object refused');
select throws_ok(pg_temp.apply('{"new_weights": {"timing": "x"}}'), '22023',
  'metrics.new_weights must map data_quality, authority, company_fit, timing to numbers between 0 and 1',
  'a weight map with a string refused');
select throws_ok(
  format('select public.apply_learned_weights(%L, %L, null)', (select client_a from ids),
    '{"data_quality": 0.2, "authority": 0.3, "company_fit": 0.2, "surprise": 0.15}'),
  '22023', 'weights must have exactly the keys data_quality, authority, company_fit, timing',
  'weights with an unknown key refused');

-- A 20 MB payload: refused by its size, and the error is short.
create temp table big as select json_build_object('reason', repeat('x', 20000000))::text as m;
grant select on big to public;
create function pg_temp.error_length(p_sql text) returns integer language plpgsql as $$
begin
  execute p_sql;
  return -1;
exception when others then
  return length(sqlerrm);
end
$$;
select cmp_ok(pg_temp.error_length(pg_temp.apply((select m from big))), '<', 100,
  'a 20 MB payload gets an error of under 100 characters (no echo)');
select throws_ok(pg_temp.apply((select m from big)), '22023', 'metrics too large: at most 16 kB',
  'a 20 MB payload refused by its size');

-- Valid: applied and recorded with the metrics.
select is(
  (select (public.apply_learned_weights(client_a,
    '{"data_quality": 0.2, "authority": 0.3, "company_fit": 0.2, "timing": 0.15}',
    '{"n": 300, "conversions": 31, "confidence": 0.9, "auc_gain": 0.01, "status": "fitted",
      "fold_gains": [0.01, 0.02], "warnings": [], "new_weights": {"timing": 0.15}}') ->> 'applied')::boolean
   from ids),
  true, 'valid weights and metrics are applied');
select results_eq(
  $$select applied, (metrics ->> 'n')::integer, metrics ->> 'source', caller_role
    from public.conversion_weight_applications where client_id = (select client_a from ids)$$,
  $$values (true, 300, 'apply_learned_weights', 'service_role')$$,
  'the application is recorded with its metrics and who applied it');
reset role;

-- Members read the record of their clients; a viewer cannot apply.
set local role authenticated;
select set_config('request.jwt.claims',
  json_build_object('sub', (select viewer_a from ids), 'role', 'authenticated')::text, true);
select is((select count(*)::integer from public.conversion_weight_applications), 1,
  'a member reads the record of its client');
select throws_ok(pg_temp.apply('{}'), '42501', null, 'a viewer cannot apply weights');
reset role;

select * from finish();
rollback;
