-- The lead score on the leads themselves: the row trigger (insert, update of a
-- scored column and nothing else), the snapshot columns, the tiers at every
-- boundary through real leads, the learned-weights path, the client context
-- and its fallback, and the conversion triggers alongside.
begin;
select plan(41);

create temp table k (key text primary key, id uuid not null);
create function pg_temp.id(p_key text) returns uuid
language sql stable as $$ select k.id from pg_temp.k as k where k.key = p_key $$;

-- A client with ICP Dental / 11-50 / US.
with c as (
  insert into public.clients (name, icp_industries, icp_company_sizes, icp_locations)
  values ('als-trigger', '{Dental}', '{11-50}', '{US}') returning id
)
insert into pg_temp.k select 'c', c.id from c;

-- A lead of that client: p_parts names which attribute groups to fill.
--   dq20: verified email and phone, LinkedIn, personal email (20); dq8: verified
--   email; dq4: unverified email; fit25: Dental, 20 employees, US; fit10:
--   Dental only; fit7: US only; hire: hiring (5); fund12 / fund24: funded 3 / 18
--   months ago (4 / 2).
create function pg_temp.lead(p_key text, p_title text, p_parts text []) returns uuid
language sql as $$
  with l as (
    insert into public.leads (
      client_id, title, email, email_verified, phone, phone_verified, linkedin_url, personal_email,
      organization_industry, organization_employee_count, organization_country, organization_is_hiring,
      organization_latest_funding_date
    )
    values (
      pg_temp.id('c'), p_title,
      case when p_parts && '{dq20,dq8,dq4}' then 'x@example.com' end,
      case when p_parts && '{dq20,dq8}' then true when 'dq4' = any(p_parts) then false end,
      case when 'dq20' = any(p_parts) then '+15550000' end,
      case when 'dq20' = any(p_parts) then true end,
      case when 'dq20' = any(p_parts) then 'https://linkedin.example/in/x' end,
      case when 'dq20' = any(p_parts) then 'me@home.example' end,
      case when p_parts && '{fit25,fit10}' then 'Dental' else 'Retail' end,
      case when 'fit25' = any(p_parts) then 20 else 500 end,
      case when p_parts && '{fit25,fit7}' then 'US' else 'DE' end,
      'hire' = any(p_parts),
      case
        when 'fund12' = any(p_parts) then (now() - interval '3 months')::date
        when 'fund24' = any(p_parts) then (now() - interval '18 months')::date
      end
    )
    returning id
  )
  insert into pg_temp.k select p_key, l.id from l returning id
$$;

create function pg_temp.score(p_key text) returns integer
language sql stable as $$ select l.als_score from public.leads as l where l.id = pg_temp.id(p_key) $$;
create function pg_temp.tier(p_key text) returns text
language sql stable as $$ select l.als_tier from public.leads as l where l.id = pg_temp.id(p_key) $$;

-- Tiers at every boundary (default weights: score = sum of components + 15 - risk).
select pg_temp.lead('s85', 'CEO', '{dq20,fit25}');
select pg_temp.lead('s84', 'Chief of Staff', '{dq20,fit25,fund24}');
select pg_temp.lead('s60', 'Marketing Manager', '{dq8,fit25,hire}');
select pg_temp.lead('s59', 'Marketing Manager', '{dq8,fit25,fund12}');
select pg_temp.lead('s35', 'Engineer', '{dq8,fit7}');
select pg_temp.lead('s34', 'Engineer', '{dq4,fit10}');
select pg_temp.lead('s20', 'Engineer', '{}');
select pg_temp.lead('s19', 'Marketing Assistant', '{dq4}');
select is(pg_temp.score('s85'), 85, 'a lead of 85');
select is(pg_temp.tier('s85'), 'hot', '85 is hot');
select is(pg_temp.score('s84'), 84, 'a lead of 84');
select is(pg_temp.tier('s84'), 'warm', '84 is warm');
select is(pg_temp.score('s60'), 60, 'a lead of 60');
select is(pg_temp.tier('s60'), 'warm', '60 is warm');
select is(pg_temp.score('s59'), 59, 'a lead of 59');
select is(pg_temp.tier('s59'), 'cool', '59 is cool');
select is(pg_temp.score('s35'), 35, 'a lead of 35');
select is(pg_temp.tier('s35'), 'cool', '35 is cool');
select is(pg_temp.score('s34'), 34, 'a lead of 34');
select is(pg_temp.tier('s34'), 'cold', '34 is cold');
select is(pg_temp.score('s20'), 20, 'a lead of 20');
select is(pg_temp.tier('s20'), 'cold', '20 is cold');
select is(pg_temp.score('s19'), 19, 'a lead of 19 (a junior title costs 5)');
select is(pg_temp.tier('s19'), 'dead', '19 is dead');

-- The snapshot columns.
select results_eq(
  $$select als_data_quality, als_authority, als_company_fit, als_timing, als_risk, als_components,
      als_weights_used, scored_at
    from public.leads where id = pg_temp.id('s84')$$,
  $$values (20, 22, 25, 2, 0,
    '{"data_quality": 20, "authority": 22, "company_fit": 25, "timing": 2, "risk": 0}'::jsonb,
    ci_private.als_default_weights(), now())$$,
  'insert: the five columns, the als_components snapshot, the weights used and scored_at'
);

-- Updates: an unrelated column does not rescore, a scored one does.
update public.leads set scored_at = '2001-01-01', als_score = -1 where id = pg_temp.id('s60');
update public.leads set first_name = 'Ann', company = 'Acme', updated_at = now(), timezone = 'Europe/Paris'
where id = pg_temp.id('s60');
select is(
  (select scored_at from public.leads where id = pg_temp.id('s60')), '2001-01-01'::timestamptz,
  'an update of unrelated columns does not rescore (scored_at unchanged)'
);
update public.leads set title = title where id = pg_temp.id('s60');
select is(pg_temp.score('s60'), -1, 'an update that sets a scored column to its own value does not rescore');
update public.leads set organization_is_hiring = false where id = pg_temp.id('s60');
select is(pg_temp.score('s60'), 55, 'an update of a scored column rescores (no longer hiring: 60 - 5)');
select is(
  (select scored_at from public.leads where id = pg_temp.id('s60')), now(), 'and records when'
);
update public.leads set title = 'Vice President of Sales' where id = pg_temp.id('s60');
select is(
  (select als_authority from public.leads where id = pg_temp.id('s60')), 18, 'a new title rescores its authority'
);
update public.leads set bounce_count = 1 where id = pg_temp.id('s85');
select is(pg_temp.score('s85'), 75, 'a bounce rescores: risk 10');
update public.leads set status = 'unsubscribed' where id = pg_temp.id('s85');
select is(pg_temp.score('s85'), 70, 'unsubscribing rescores: risk 15 at most');

-- The converting-touch triggers and the scoring trigger side by side.
select pg_temp.lead('conv', 'Owner', '{dq8}');
insert into public.activities (client_id, lead_id, channel, action, created_at)
values (pg_temp.id('c'), pg_temp.id('conv'), 'email', 'sent', now() - interval '2 days');
update public.leads set status = 'converted' where id = pg_temp.id('conv');
select results_eq(
  $$select status::text, converted_at is not null, als_score, scored_at = now()
    from public.leads where id = pg_temp.id('conv')$$,
  $$values ('converted', true, 48, true)$$,
  'a conversion sets converted_at and rescores the lead (status is scored)'
);
select is(
  (select count(*)::integer from public.activities where lead_id = pg_temp.id('conv') and led_to_booking), 1,
  'and its converting touch is marked'
);
insert into public.activities (client_id, lead_id, channel, action, created_at)
values (pg_temp.id('c'), pg_temp.id('s59'), 'email', 'meeting_booked', now());
select results_eq(
  $$select status::text, converted_at = now(), als_score from public.leads where id = pg_temp.id('s59')$$,
  $$values ('converted', true, 59)$$,
  'a booking activity converts the lead; its score is recomputed and unchanged'
);

-- Learned weights: valid ones replace the defaults for new scores; invalid ones do not.
update public.clients
set als_learned_weights = '{"data_quality": 0.10, "authority": 0.35, "company_fit": 0.25, "timing": 0.15}'
where id = pg_temp.id('c');
select pg_temp.lead('lw', 'CEO', '{dq20,fit25}');
select results_eq(
  $$select als_score, als_weights_used from public.leads where id = pg_temp.id('lw')$$,
  $$values (85, '{"data_quality": 0.10, "authority": 0.35, "company_fit": 0.25, "timing": 0.15}'::jsonb)$$,
  'learned weights: used and recorded (10 + 35 + 25 + 0 + 15)'
);
select pg_temp.lead('lw2', 'Engineer', '{dq20}');
select is(pg_temp.score('lw2'), 32, 'learned weights: 20/20 x 10 + 5/25 x 35 + 15 = 32 (defaults would give 40)');
update public.clients
set als_learned_weights = '{"data_quality": 0.10, "authority": 0.36, "company_fit": 0.25, "timing": 0.15}'
where id = pg_temp.id('c');
select pg_temp.lead('lw3', 'Engineer', '{dq20}');
select results_eq(
  $$select als_score, als_weights_used from public.leads where id = pg_temp.id('lw3')$$,
  $$values (40, ci_private.als_default_weights())$$,
  'invalid learned weights (sum 0.86): the defaults are used and recorded'
);
update public.clients set als_learned_weights = '"garbage"' where id = pg_temp.id('c');
select pg_temp.lead('lw4', 'Engineer', '{dq20}');
select is(pg_temp.score('lw4'), 40, 'learned weights that are not even an object: the defaults');
update public.clients set als_learned_weights = null where id = pg_temp.id('c');

-- The client context: an ICP change takes effect for the next lead; a missing
-- context row is rebuilt from the client row.
update public.clients set icp_industries = '{Retail}' where id = pg_temp.id('c');
select pg_temp.lead('icp', 'Engineer', '{}');
select is(
  (select als_company_fit from public.leads where id = pg_temp.id('icp')), 10, 'a new ICP industry applies at once'
);
delete from ci_private.als_client_context where client_id = pg_temp.id('c');
select pg_temp.lead('ctx', 'Engineer', '{fit7}');
select is(
  (select als_company_fit from public.leads where id = pg_temp.id('ctx')), 17, 'a missing context is rebuilt'
);
select is(
  (select count(*)::integer from ci_private.als_client_context where client_id = pg_temp.id('c')), 1,
  'and stored again'
);

-- Bad input scores by its rule instead of failing.
insert into public.leads (
  client_id, title, email, organization_employee_count, organization_latest_funding_date,
  employment_start_date, bounce_count, organization_industry, organization_country
)
values (pg_temp.id('c'), repeat('x', 10000), '', -5, '9999-12-31', '1900-01-01', -2, '', null);
select results_eq(
  $$select als_data_quality, als_authority, als_company_fit, als_timing, als_risk, als_score
    from public.leads where client_id = pg_temp.id('c') and organization_employee_count = -5$$,
  $$values (0, 5, 0, 0, 0, 20)$$,
  'absurd attributes score by their rules: no email, other title, no size, no timing, no risk'
);
insert into public.leads (client_id) values (pg_temp.id('c'));
select results_eq(
  $$select als_score, als_tier, als_components from public.leads
    where client_id = pg_temp.id('c') and title is null and email is null$$,
  $$values (15, 'dead', '{"data_quality": 0, "authority": 0, "company_fit": 0, "timing": 0, "risk": 0}'::jsonb)$$,
  'a lead with nothing but its client scores 15 (the risk allowance)'
);
select lives_ok(
  $$insert into public.leads (client_id, title, organization_employee_count)
    select pg_temp.id('c'), t, n from unnest(array['CEO', null, '', '🚀 Growth Ninja', 'VP'], array[1, null, 0, -1, 2147483647]) as u (t, n)$$,
  'a batch with odd titles and employee counts inserts in one statement'
);
select throws_ok(
  $$insert into public.leads (client_id) values ('00000000-0000-0000-0000-00000000dead')$$,
  '23503', null, 'a lead of an unknown client still fails on its foreign key, not in the scorer'
);

-- Triggers fire only when they must.
select is(
  (select tgtype::integer & 2 from pg_trigger where tgname = 'leads_ci_score_upd'), 2,
  'the update trigger is a BEFORE trigger'
);
select ok(
  (select pg_get_triggerdef(oid) ~ 'BEFORE UPDATE OF .* WHEN' from pg_trigger where tgname = 'leads_ci_score_upd'),
  'the update trigger lists its columns and compares them'
);
select ok(
  not (select pg_get_triggerdef(oid) ~ 'als_score|scored_at|first_name|updated_at'
       from pg_trigger where tgname = 'leads_ci_score_upd'),
  'the update trigger ignores the score columns and unrelated ones'
);

select * from finish();
rollback;
