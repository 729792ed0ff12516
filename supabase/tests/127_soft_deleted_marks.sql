-- A soft-deleted lead carries no converting-touch mark (contract section 3:
-- rows with deleted_at set are ignored everywhere), on every path that places
-- marks: the lead trigger (soft deletion, restoration), a late send
-- (remark_leads from the activities trigger) and the refresh's re-marking of
-- a whole client (remark_client). Migration 20261201110900.
begin;
select plan(20);

\ir include/converting_touch_fixture.psql

-- Soft deletion removes the mark; restoration puts it back.
select from pg_temp.lead('s1');
select from pg_temp.act('s1/t1', 's1', 'email_sent', now() - interval '3 days');
select from pg_temp.act('s1/t2', 's1', 'email_sent', now() - interval '2 days');
update public.leads set status = 'converted' where id = pg_temp.id('s1');
select results_eq($$ select * from pg_temp.marked('s1') $$, $$ values ('s1', 's1/t2') $$, 'converted: last touch marked');
update public.leads set deleted_at = now() where id = pg_temp.id('s1');
select is_empty($$ select * from pg_temp.marked('s1') $$, 'soft deletion removes the mark');
select is(pg_temp.status('s1'), 'converted', 'the host''s status stays as written');
update public.leads set deleted_at = null where id = pg_temp.id('s1');
select results_eq($$ select * from pg_temp.marked('s1') $$, $$ values ('s1', 's1/t2') $$, 'restoration marks it again');

-- A soft-deleted converted lead: a late send (earlier than converted_at) is
-- not marked.
select from pg_temp.lead('s2', 'c1', 'converted', now() - interval '1 day');
update public.leads set deleted_at = now() where id = pg_temp.id('s2');
select from pg_temp.act('s2/t1', 's2', 'email_sent', now() - interval '2 days');
select is_empty($$ select * from pg_temp.marked('s2') $$, 'a late send to a soft-deleted converted lead is not marked');
-- A live one's is (the same path).
select from pg_temp.lead('s3', 'c1', 'converted', now() - interval '1 day');
select from pg_temp.act('s3/t1', 's3', 'email_sent', now() - interval '2 days');
select results_eq($$ select * from pg_temp.marked('s3') $$, $$ values ('s3', 's3/t1') $$, 'a late send to a live converted lead is');

-- Marks left by writes the triggers did not see (ci.deriving on stands for
-- any write that skipped them): the refresh's re-marking of the client
-- removes a soft-deleted lead's mark and restores a restored lead's.
set local ci.deriving = 'on';
update public.leads set deleted_at = now() where id = pg_temp.id('s3');
update public.leads set deleted_at = null where id = pg_temp.id('s2');
set local ci.deriving = '';
select results_eq($$ select * from pg_temp.marked('s_') $$, $$ values ('s1', 's1/t2'), ('s3', 's3/t1') $$, 'stale marks before');
select is(
  (select array[r.added, r.removed] from ci_private.remark_client(pg_temp.id('c1')) as r),
  array[1, 1],
  'remark_client: one mark added (restored lead), one removed (soft-deleted lead)'
);
select results_eq($$ select * from pg_temp.marked('s_') $$, $$ values ('s1', 's1/t2'), ('s2', 's2/t1') $$, 'marks after');

-- remark_leads with a client (the set-based branch) and without (the probes).
set local ci.deriving = 'on';
update public.leads set deleted_at = now() where id = pg_temp.id('s1');
set local ci.deriving = '';
select is(
  (
    select array[r.added, r.removed]
    from ci_private.remark_leads(array[pg_temp.id('s1'), pg_temp.id('s2'), pg_temp.id('s3')], pg_temp.id('c1')) as r
  ),
  array[0, 1],
  'remark_leads with a client removes a soft-deleted lead''s mark'
);
set local ci.deriving = 'on';
update public.leads set deleted_at = now() where id = pg_temp.id('s2');
set local ci.deriving = '';
select is(
  (select array[r.added, r.removed] from ci_private.remark_leads(array[pg_temp.id('s2')]) as r),
  array[0, 1],
  'remark_leads without a client (the triggers'' path) removes it too'
);
select is_empty($$ select * from pg_temp.marked('s_') $$, 'no soft-deleted lead keeps a mark');

-- Restoration derives the lead's conversion from its history: a booking
-- written while the lead was soft-deleted converted nothing then.
select from pg_temp.lead('r1');
select from pg_temp.act('r1/t1', 'r1', 'email_sent', now() - interval '3 days');
update public.leads set deleted_at = now() where id = pg_temp.id('r1');
select from pg_temp.act('r1/booked', 'r1', 'meeting_booked', now() - interval '2 days');
select is(pg_temp.status('r1'), 'in_sequence', 'a booking of a soft-deleted lead converts nothing');
update public.leads set deleted_at = null where id = pg_temp.id('r1');
select is(pg_temp.status('r1'), 'converted', 'restored: converted by the booking written meanwhile');
select is(pg_temp.converted_at('r1'), now() - interval '2 days', 'restored: at the booking''s time');
select results_eq($$ select * from pg_temp.marked('r1') $$, $$ values ('r1', 'r1/t1') $$, 'restored: its touch marked');

-- A booking deleted while the lead was soft-deleted: restored, not converted.
select from pg_temp.lead('r2');
select from pg_temp.act('r2/t1', 'r2', 'email_sent', now() - interval '3 days');
select from pg_temp.act('r2/booked', 'r2', 'meeting_booked', now() - interval '2 days');
update public.leads set deleted_at = now() where id = pg_temp.id('r2');
delete from public.activities where id = pg_temp.id('r2/booked');
update public.leads set deleted_at = null where id = pg_temp.id('r2');
select is(pg_temp.status('r2'), 'in_sequence', 'restored after its only booking was deleted: not converted');
select is_empty($$ select * from pg_temp.marked('r2') $$, 'and not marked');

-- A restored lead is scored with the ICP of now (it changed while the lead
-- was soft-deleted); r3, a live twin, is scored by the ICP change itself.
update public.clients set icp_industries = '{Retail}' where id = pg_temp.id('c1');
select from pg_temp.lead('r3');
update public.leads set organization_industry = 'Fintech' where id in (pg_temp.id('r2'), pg_temp.id('r3'));
update public.leads set deleted_at = now() where id = pg_temp.id('r2');
update public.clients set icp_industries = '{Fintech}' where id = pg_temp.id('c1');
select isnt(
  (select l.als_company_fit from public.leads as l where l.id = pg_temp.id('r2')),
  (select l.als_company_fit from public.leads as l where l.id = pg_temp.id('r3')),
  'precondition: the ICP change left the soft-deleted lead''s score as it was'
);
update public.leads set deleted_at = null where id = pg_temp.id('r2');
select is(
  (select l.als_company_fit from public.leads as l where l.id = pg_temp.id('r2')),
  (select l.als_company_fit from public.leads as l where l.id = pg_temp.id('r3')),
  'a restored lead is rescored with the ICP of now'
);

select * from finish();
rollback;
