-- Scores follow what they depend on (issue 13): a change of a client's ICP or
-- learned weights rescores its leads, set-based: at once for a small client,
-- queued for the next refresh (or ci_private.rescore_pending) for a large one.
-- Applying learned weights (ci_private.apply_als_weights, the refresh's and
-- apply_learned_weights' path) goes the same way, once: 0.4.0's rescored the
-- leads a second time itself, a large client inside the refresh.
begin;
select plan(23);
set local track_functions = 'all';

insert into public.clients (id, name, icp_industries)
values ('00000000-0000-0000-0000-00000000d061', 'icp small', '{SaaS}');
insert into public.leads (client_id, status, title, organization_industry)
select '00000000-0000-0000-0000-00000000d061', 'in_sequence', 'CEO', x.industry
from (values ('Fintech'), ('Fintech'), ('SaaS')) as x (industry);

select results_eq(
  $$ select l.organization_industry, l.als_company_fit from public.leads as l
     where l.client_id = '00000000-0000-0000-0000-00000000d061' order by 1, 2 $$,
  $$ values ('Fintech', 0), ('Fintech', 0), ('SaaS', 10) $$,
  'before: the ICP industry scores'
);
update public.clients set icp_industries = '{Fintech}' where id = '00000000-0000-0000-0000-00000000d061';
select results_eq(
  $$ select l.organization_industry, l.als_company_fit from public.leads as l
     where l.client_id = '00000000-0000-0000-0000-00000000d061' order by 1, 2 $$,
  $$ values ('Fintech', 10), ('Fintech', 10), ('SaaS', 0) $$,
  'an ICP change rescores every lead of a small client at once'
);
update public.clients set als_learned_weights = '{"data_quality": 0.05, "authority": 0.50, "company_fit": 0.15, "timing": 0.15}'
where id = '00000000-0000-0000-0000-00000000d061';
select is(
  (select count(*)::int from public.leads as l
   where l.client_id = '00000000-0000-0000-0000-00000000d061' and (l.als_weights_used ->> 'authority')::numeric = 0.50),
  3,
  'new learned weights rescore every lead with them'
);

-- A large client (the inline limit set to 1 lead here): queued, not rescored in the client's update.
update ci_private.settings set value = '1' where key = 'rescore_inline_max';
insert into public.clients (id, name, icp_industries)
values ('00000000-0000-0000-0000-00000000e061', 'icp large', '{SaaS}');
insert into public.leads (client_id, status, title, organization_industry)
select '00000000-0000-0000-0000-00000000e061', 'in_sequence', 'CEO', 'Fintech' from generate_series(1, 3);
update public.clients set icp_industries = '{Fintech}' where id = '00000000-0000-0000-0000-00000000e061';
select is(
  (select count(*)::int from public.leads as l
   where l.client_id = '00000000-0000-0000-0000-00000000e061' and l.als_company_fit = 0),
  3,
  'a large client''s leads are not rescored inside the host''s update'
);
select is(
  (select count(*)::int from ci_private.als_rescore_queue as q where q.client_id = '00000000-0000-0000-0000-00000000e061'),
  1,
  '... it is queued'
);
insert into public.leads (client_id, status, title, organization_industry)
values ('00000000-0000-0000-0000-00000000e061', 'in_sequence', 'CEO', 'Fintech');
select is(
  (select max(l.als_company_fit) from public.leads as l where l.client_id = '00000000-0000-0000-0000-00000000e061'),
  10,
  'a lead written after the change is scored with the new ICP at once'
);
select is(ci_private.rescore_if_pending('00000000-0000-0000-0000-00000000e061'), 4,
  'the refresh''s rescore_if_pending rescores the queued client''s leads in one statement');
select results_eq(
  $$ select (select count(*)::int from public.leads as l
             where l.client_id = '00000000-0000-0000-0000-00000000e061' and l.als_company_fit = 10),
            (select count(*)::int from ci_private.als_rescore_queue as q
             where q.client_id = '00000000-0000-0000-0000-00000000e061') $$,
  $$ values (4, 0) $$,
  '... every lead now follows the new ICP, and the client has left the queue'
);


-- Learned weights applied to the large client: queued, not rescored in the call.
select is(
  ci_private.apply_als_weights('00000000-0000-0000-0000-00000000e061',
    '{"data_quality": 0.10, "authority": 0.40, "company_fit": 0.20, "timing": 0.15}', '{"applied": true}')
  - 'applied_at' - 'weights' - 'previous_weights',
  '{"applied": true, "rescored": 0, "rescore_queued": true}'::jsonb,
  'learned weights for a large client: applied and queued, no lead rescored in the call'
);
select is(
  (select count(*)::int from public.leads as l
   where l.client_id = '00000000-0000-0000-0000-00000000e061' and (l.als_weights_used ->> 'authority')::numeric = 0.40),
  0,
  '... its leads keep the weights they were scored with until the queue is worked off'
);
select is(ci_private.rescore_if_pending('00000000-0000-0000-0000-00000000e061'), 4, '... then rescored, once');

-- The small client: rescored once, by the trigger, in the call.
update ci_private.settings set value = '5000' where key = 'rescore_inline_max';
create temp table calls on commit drop as
select pg_stat_get_xact_function_calls('ci_private.rescore_leads(uuid, uuid)'::regprocedure) as n;
select is(
  ci_private.apply_als_weights('00000000-0000-0000-0000-00000000d061',
    '{"data_quality": 0.10, "authority": 0.40, "company_fit": 0.20, "timing": 0.15}', '{"applied": true}')
  - 'applied_at' - 'weights' - 'previous_weights',
  '{"applied": true, "rescored": 3, "rescore_queued": false}'::jsonb,
  'learned weights for a small client: its 3 leads rescored in the call'
);
select is(
  (select count(*)::int from public.leads as l
   where l.client_id = '00000000-0000-0000-0000-00000000d061' and (l.als_weights_used ->> 'authority')::numeric = 0.40)
  || '/' || (pg_stat_get_xact_function_calls('ci_private.rescore_leads(uuid, uuid)'::regprocedure) - (select n from calls)),
  '3/1',
  '... with the new weights, by one rescore (not the trigger''s and then the function''s own)'
);

-- Whatever the trigger did not do, the call does (review of the change):
-- a small client waiting in the queue is rescored in the call and leaves it,
update ci_private.settings set value = '1' where key = 'rescore_inline_max';
update public.clients set icp_locations = '{DE}' where id = '00000000-0000-0000-0000-00000000d061';
update ci_private.settings set value = '5000' where key = 'rescore_inline_max';
select is(
  ci_private.apply_als_weights('00000000-0000-0000-0000-00000000d061',
    '{"data_quality": 0.10, "authority": 0.40, "company_fit": 0.20, "timing": 0.15}', '{"applied": true}')
  - 'applied_at' - 'weights' - 'previous_weights',
  '{"applied": true, "rescored": 3, "rescore_queued": false}'::jsonb,
  'the same weights again for a small client waiting in the queue: rescored in the call, out of the queue'
);
-- a large client with a lead not scored with the weights in force (one
-- written with the triggers off, its weights set back by hand; a lead
-- restored from a soft delete is rescored since migration 20261201110900)
-- is queued, not left as it is,
update ci_private.settings set value = '1' where key = 'rescore_inline_max';
select ci_private.apply_als_weights('00000000-0000-0000-0000-00000000e061',
  '{"data_quality": 0.15, "authority": 0.35, "company_fit": 0.20, "timing": 0.15}', '{"applied": true}');
select ci_private.rescore_if_pending('00000000-0000-0000-0000-00000000e061');
update public.leads set als_weights_used = '{"data_quality": 0.10, "authority": 0.40, "company_fit": 0.20, "timing": 0.15}'
where id = (select min(l.id::text)::uuid from public.leads as l where l.client_id = '00000000-0000-0000-0000-00000000e061');
select is(
  ci_private.apply_als_weights('00000000-0000-0000-0000-00000000e061',
    '{"data_quality": 0.15, "authority": 0.35, "company_fit": 0.20, "timing": 0.15}', '{"applied": true}')
  - 'applied_at' - 'weights' - 'previous_weights',
  '{"applied": true, "rescored": 0, "rescore_queued": true}'::jsonb,
  'the same weights again for a large client with a lead scored otherwise: queued'
);
select is(
  (select count(*)::int from public.leads as l
   where l.client_id = '00000000-0000-0000-0000-00000000e061' and (l.als_weights_used ->> 'data_quality')::numeric = 0.15),
  3,
  '... (until then 3 of its 4 leads carry them)'
);
-- and in a replica-mode session (the weights' trigger does not fire) a small
-- client is still rescored with the new weights, by the call.
update ci_private.settings set value = '5000' where key = 'rescore_inline_max';
set local session_replication_role = replica;
create temp table replica_apply on commit drop as
select ci_private.apply_als_weights('00000000-0000-0000-0000-00000000d061',
  '{"data_quality": 0.20, "authority": 0.30, "company_fit": 0.20, "timing": 0.15}', '{"applied": true}') as r;
select is(
  (select r - 'applied_at' - 'weights' - 'previous_weights' from replica_apply)
  || jsonb_build_object('leads_with_them', (
    select count(*) from public.leads as l
    where l.client_id = '00000000-0000-0000-0000-00000000d061' and (l.als_weights_used ->> 'data_quality')::numeric = 0.20)),
  '{"applied": true, "rescored": 3, "rescore_queued": false, "leads_with_them": 3}'::jsonb,
  'in a replica-mode session (no trigger) a small client is rescored with the new weights by the call'
);
set local session_replication_role = origin;

-- Timing ages: a lead scored when its role was new (6 points) whose role is
-- now eight months old (3 points) is rescored by the refresh's step, and only
-- that lead (the stored timing is set back by hand, as if scored in the past).
update public.leads set employment_start_date = current_date - interval '8 months'
where id = (select min(l.id::text)::uuid from public.leads as l where l.client_id = '00000000-0000-0000-0000-00000000d061');
update public.leads set als_timing = 6
where id = (select min(l.id::text)::uuid from public.leads as l where l.client_id = '00000000-0000-0000-0000-00000000d061');
select is(ci_private.rescore_if_pending('00000000-0000-0000-0000-00000000d061'), 1,
  'a client not queued: the one lead whose timing aged since it was scored is rescored');
select results_eq(
  $$ select l.als_timing from public.leads as l
     where l.id = (select min(x.id::text)::uuid from public.leads as x where x.client_id = '00000000-0000-0000-0000-00000000d061') $$,
  $$ values (3) $$,
  '... with the timing of today (a role of eight months: 3)'
);

-- A lead scored with other weights than its client's (inserted while another
-- transaction was applying new weights, not yet committed, so it read the old
-- ones) is rescored by the same step.
update public.leads set als_weights_used = '{"data_quality": 0.20, "authority": 0.25, "company_fit": 0.25, "timing": 0.15}'
where id = (select max(l.id::text)::uuid from public.leads as l where l.client_id = '00000000-0000-0000-0000-00000000d061');
select is(ci_private.rescore_if_pending('00000000-0000-0000-0000-00000000d061'), 1,
  'a client not queued: the one lead scored with other weights than its client''s is rescored');
select is(
  (select l.als_weights_used from public.leads as l
   where l.id = (select max(x.id::text)::uuid from public.leads as x where x.client_id = '00000000-0000-0000-0000-00000000d061')),
  (select k.weights from ci_private.als_client_context as k where k.client_id = '00000000-0000-0000-0000-00000000d061'),
  '... with the client''s weights'
);

-- Weights changed in a replica-mode session (no trigger refreshes the cached
-- context): the step compares with the weights the rescore writes, so every
-- lead is rescored once with them, and then none (it compared with the cache
-- and rescored the same leads at every refresh).
set local session_replication_role = replica;
update public.clients set als_learned_weights = '{"data_quality": 0.25, "authority": 0.25, "company_fit": 0.20, "timing": 0.15}'
where id = '00000000-0000-0000-0000-00000000d061';
set local session_replication_role = origin;
select is(ci_private.rescore_if_pending('00000000-0000-0000-0000-00000000d061'), 3,
  'weights changed in a replica-mode session: the client''s 3 leads rescored with them');
select is(ci_private.rescore_if_pending('00000000-0000-0000-0000-00000000d061'), 0, '... once');

select * from finish();
rollback;
