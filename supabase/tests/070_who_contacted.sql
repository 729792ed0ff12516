-- WHO over contacted leads (issue 14): leads nobody contacted change nothing;
-- the as-of date of timing signals is the lead's local date; segments need 30
-- leads; losers are listed; leads with no title are a segment of their own.
begin;
select plan(13);

create temp table ids as select gen_random_uuid() as c, gen_random_uuid() as z;
insert into public.clients (id, name, timezone)
select c, 'WHO contacted', 'UTC' from ids
union all select z, 'WHO local date', 'UTC' from ids;

-- n contacted leads of a client: title, status; one outbound touch 30 days ago.
create function pg_temp.leads(p_client uuid, p_n integer, p_title text, p_status text)
returns void
language sql as $$
  with l as (
    insert into public.leads (client_id, title, status, organization_industry, created_at)
    select p_client, p_title, p_status::public.lead_status, 'Dental', now() - interval '40 days'
    from generate_series(1, p_n)
    returning id, client_id
  )
  insert into public.activities (client_id, lead_id, channel, action, created_at)
  select l.client_id, l.id, 'email', 'sent', now() - interval '30 days' from l
$$;

select pg_temp.leads((select c from ids), 20, 'CEO', 'converted');
select pg_temp.leads((select c from ids), 20, 'CEO', 'dead');
select pg_temp.leads((select c from ids), 6, 'Engineer', 'converted');
select pg_temp.leads((select c from ids), 54, 'Engineer', 'not_interested');
select pg_temp.leads((select c from ids), 10, null, 'converted');
select pg_temp.leads((select c from ids), 30, null, 'dead');
select pg_temp.leads((select c from ids), 3, 'Founder', 'converted');
select pg_temp.leads((select c from ids), 2, 'Founder', 'dead');

create temp table before as select public.detect_who_patterns((select c from ids)) as p;

-- A bounced import: 300 leads with one title, never contacted.
insert into public.leads (client_id, title, status, bounce_count, organization_industry)
select (select c from ids), 'Operations Analyst', 'bounced', 1, 'Dental' from generate_series(1, 300);

create temp table after as select public.detect_who_patterns((select c from ids)) as p;
grant select on before, after to public;

select is((select (p ->> 'sample_size')::integer from after), 145, 'uncontacted leads are not in the sample');
select is(
  (select p -> 'title_rankings' from after), (select p -> 'title_rankings' from before),
  'uncontacted leads change no ranking'
);
select is(
  (select p -> 'baseline_rate' from after), (select p -> 'baseline_rate' from before), 'nor the baseline'
);
select ok(
  not exists (
    select 1 from after, jsonb_array_elements(p -> 'title_rankings') as t (e) where e ->> 'title' = 'operations analyst'
  ),
  'and their title is no loser on 0 of 300'
);
select is((select (p ->> 'min_sample')::integer from after), 30, 'segments need 30 leads, as elsewhere');
select ok(
  not exists (
    select 1 from after, jsonb_array_elements(p -> 'title_rankings') as t (e) where e ->> 'title' = 'founder'
  ),
  'a 3-of-5 title is not ranked'
);
select is((select p #>> '{title_rankings,0,title}' from after), 'ceo', 'the 20-of-40 title leads');
select is(
  (select jsonb_agg(e ->> 'title') from after, jsonb_array_elements(p -> 'winning_titles') as t (e)),
  '["ceo"]'::jsonb, 'the winner is listed'
);
select is(
  (select jsonb_agg(e ->> 'title') from after, jsonb_array_elements(p -> 'losing_titles') as t (e)),
  '["engineer"]'::jsonb, 'and so is the loser (6 of 60)'
);
select results_eq(
  $$select e ->> 'title', (e ->> 'missing')::boolean, (e ->> 'sample')::integer, (e ->> 'conversions')::integer
    from after, jsonb_array_elements(p -> 'title_rankings') as t (e) where (e ->> 'missing')::boolean$$,
  $$values ('(missing)', true, 40, 10)$$,
  'leads with no title are a segment of their own'
);

-- The as-of date is the first touch's date in the lead's zone: sent 2026-01-10 12:00 UTC, which is
-- 2026-01-11 01:00 in Auckland, to a lead who started the role on 2026-01-11: in the role (new
-- role) at the touch, locally; in UTC, the role would only start the next day.
insert into public.leads (client_id, title, status, timezone, employment_start_date)
select (select z from ids), 'CEO', 'dead', 'Pacific/Auckland', date '2026-01-11';
insert into public.activities (client_id, lead_id, channel, action, created_at)
select l.client_id, l.id, 'email', 'sent', timestamptz '2026-01-10 12:00+00'
from public.leads as l where l.client_id = (select z from ids);
select is(
  (select bool_and(w.new_role) from ci_private.who_lead_counts((select z from ids)) as w where not w.learning),
  true, 'new role judged on the lead''s local date'
);
update public.leads set timezone = 'UTC' where client_id = (select z from ids);
select is(
  (select bool_and(w.new_role) from ci_private.who_lead_counts((select z from ids)) as w where not w.learning),
  false, 'in UTC the same touch was the day before the role began'
);
update public.leads set timezone = null where client_id = (select z from ids);
update public.clients set timezone = 'Pacific/Auckland' where id = (select z from ids);
select is(
  (select bool_and(w.new_role) from ci_private.who_lead_counts((select z from ids)) as w where not w.learning),
  true, 'with no zone of its own, the lead''s date is read in the client''s zone'
);

select * from finish();
rollback;
