-- Statistics before the refresh (migration 20261201110500): a table never
-- analysed is analysed at once; one changed by more than a fifth is left to
-- autovacuum when autovacuum analyses it, and analysed by the refresh only
-- when it does not. The change counters of a transaction are not visible
-- inside it, so the rule is checked as a function of its inputs.
begin;
select plan(12);

select is(ci_private.statistics_stale(-1, 0, true), true, 'a table never analysed: analysed at once, even with autovacuum');
select is(ci_private.statistics_stale(-1, null, false), true, '... and without');
select is(ci_private.statistics_stale(100000, 90000, true), false,
  'a table changed by 90% while autovacuum analyses it: left to autovacuum');
select is(ci_private.statistics_stale(100000, 20001, false), true,
  'autovacuum off: changed by more than a fifth, analysed');
select is(ci_private.statistics_stale(100000, 20000, false), false, '... exactly a fifth, not');
select is(ci_private.statistics_stale(0, 201, false), true, 'an empty table analysed, then 201 rows: at least 200 rows count');
select is(ci_private.statistics_stale(0, 200, false), false, '... 200 do not');
select is(ci_private.statistics_stale(1000, null, false), false, 'no counters (never read): not stale');

select is(ci_private.autovacuum_analyses('public.leads'),
  current_setting('autovacuum')::boolean and current_setting('track_counts')::boolean,
  'the host''s leads: autovacuum analyses them when the server runs it');
alter table ci_private.lead_touches set (autovacuum_enabled = false);
select is(ci_private.autovacuum_analyses('ci_private.lead_touches'), false,
  'a table with autovacuum_enabled = false: the refresh must analyse it itself');
alter table ci_private.lead_touches set (autovacuum_enabled = true);
select is(ci_private.autovacuum_analyses('ci_private.lead_touches'),
  current_setting('autovacuum')::boolean and current_setting('track_counts')::boolean,
  '... and with autovacuum_enabled = true, as the server');
set local track_counts = off;
select is(ci_private.autovacuum_analyses('public.leads'), false, 'track_counts off: autovacuum cannot see the changes');

select * from finish();
rollback;
