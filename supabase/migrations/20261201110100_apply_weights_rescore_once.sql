-- Applying learned weights rescores a client once, and a large client through
-- the rescore queue (issue 15: the refresh's cost; issue 13's design).
--
-- Since the rescore_on_icp_change migration, the weights' own trigger on
-- clients (clients_ci_als_context_upd) rescores a small client (at most
-- rescore_inline_max leads, 5000) in the UPDATE and queues a larger one for
-- ci_jobs.rescore_pending (every five minutes, in batches of 5,000 leads) or
-- the client's next refresh. ci_private.apply_als_weights, written before that,
-- still called ci_private.rescore_leads after its UPDATE: a small client was
-- rescored twice, and a large one inside the refresh that applied the weights,
-- every lead row of the client locked until the refresh committed, and again
-- when the queue was worked off. Profiled at 100,000 leads (warm session, the
-- weights applied by every refresh): rescore_leads took 5.6-6.5 s of a 13 s
-- refresh; bench_refresh's refresh figures (13.1-14.9 s) included it.
--
-- Now apply_als_weights stores the weights, lets that trigger do its part and
-- then finishes whatever it did not do, for any size and session:
--   * the scoring context is refreshed (the trigger does not fire in a
--     replica-mode session, and the queue's rescore reads the context);
--   * a client of at most rescore_inline_max leads with any lead not scored
--     with these weights, or waiting in the queue, is rescored now and leaves
--     the queue (so a small client is rescored once, by the trigger, when the
--     weights change, and never twice);
--   * a larger client with any lead not scored with these weights is queued
--     (ci_jobs.rescore_pending, every five minutes in batches; the next
--     refresh; or public.rescore_client_leads at once): never rescored inside
--     the call, which would hold every lead row of the client locked.
-- Both this function and the trigger (a new copy of it below) take the
-- client's queue row before its context and leads, in the order of the rescore
-- job and rescore_if_pending: the trigger used to rescore a small client
-- first and remove its queue row last, and a rescore of the same client under
-- way then deadlocked with it (tests/test_apply_weights_locks.py).
-- 'rescored' is the number of leads rescored in this call (by the trigger or
-- by the function), and the new 'rescore_queued' says the client waits in
-- ci_private.als_rescore_queue. The check "any lead not scored with these
-- weights" stops at the first such lead; when there is none it reads the
-- client's leads once (0.23-0.24 s at 100,000 leads, measured).
-- A client small enough to rescore in the statement that changed its ICP or
-- weights: its non-deleted leads when at most rescore_inline_max (5000 by
-- default), else null (read up to that many plus one). Used by the weights'
-- trigger and apply_als_weights, so both draw the line in the same place.
create or replace function ci_private.rescore_inline_leads(p_client_id uuid)
returns integer
language sql stable
set search_path = ''
as $$
  select case when c.n <= m.max then c.n end
  from (select coalesce(ci_private.setting('rescore_inline_max')::integer, 5000) as max) as m
  cross join lateral (
    select count(*)::integer as n
    from (
      select 1 from public.leads as l
      where l.client_id = p_client_id and l.deleted_at is null
      limit m.max + 1
    ) as y
  ) as c
$$;

create or replace function ci_private.apply_als_weights(p_client_id uuid, p_weights jsonb, p_decision jsonb)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_old jsonb;
  v_stored jsonb;
  v_new jsonb;
  v_rescored integer;
  v_sample integer;
  v_queued boolean;
  v_stale boolean;
  v_leads integer;
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
  select ci_private.als_weights_in_force(c.als_learned_weights), c.als_learned_weights into v_old, v_stored
  from public.clients as c
  where c.id = p_client_id
  for update;
  -- The queue row next (when there is one), before the context and the
  -- leads: the order of the rescore job and rescore_if_pending, so that they
  -- wait for each other instead of deadlocking.
  perform 1 from ci_private.als_rescore_queue as q where q.client_id = p_client_id for update;

  -- New weights: the clients trigger rescores a small client here, or queues a large one.
  update public.clients
  set als_learned_weights = v_new,
    als_weights_updated_at = pg_catalog.now(),
    conversion_sample_count = coalesce(v_sample, conversion_sample_count)
  where id = p_client_id;
  perform ci_private.refresh_als_context(p_client_id);

  v_leads := ci_private.rescore_inline_leads(p_client_id);
  v_stale := exists (
    select 1 from public.leads as l
    where l.client_id = p_client_id and l.deleted_at is null and l.als_weights_used is distinct from v_new
  );
  v_queued := exists (select 1 from ci_private.als_rescore_queue as q where q.client_id = p_client_id);
  if v_leads is not null then
    if v_stale or v_queued then
      delete from ci_private.als_rescore_queue as q where q.client_id = p_client_id;
      v_rescored := ci_private.rescore_leads(p_client_id);
    elsif v_stored is distinct from v_new and pg_catalog.current_setting('session_replication_role') <> 'replica' then
      -- Every lead scored with the new weights: by the trigger, in the UPDATE above
      -- (which a replica-mode session does not fire).
      v_rescored := v_leads;
    else
      v_rescored := 0;
    end if;
    v_queued := false;
  else
    if v_stale then
      insert into ci_private.als_rescore_queue as q (client_id) values (p_client_id)
      on conflict (client_id) do update set requested_at = pg_catalog.now();
      v_queued := true;
    end if;
    v_rescored := 0;
  end if;
  return jsonb_build_object(
    'applied', true,
    'weights', v_new,
    'previous_weights', v_old,
    'rescored', v_rescored,
    'rescore_queued', v_queued,
    'applied_at', pg_catalog.now()
  );
end
$$;

-- The weights' and ICP's trigger on clients, released in the
-- rescore_on_icp_change migration, with its locks in the same order as the
-- rescore job's and rescore_if_pending's (the queue row, then the context and
-- the leads): it refreshed the context and rescored a small client before
-- removing its queue row, so a rescore job working on that client at the same
-- time deadlocked with it (review: 4 runs of 4). Same effects otherwise.
create or replace function ci_private.clients_refresh_als_context()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_leads integer;
begin
  if tg_op = 'UPDATE' then
    v_leads := ci_private.rescore_inline_leads(new.id);
    if v_leads is not null then
      delete from ci_private.als_rescore_queue as q where q.client_id = new.id;
    else
      insert into ci_private.als_rescore_queue as q (client_id) values (new.id)
      on conflict (client_id) do update set requested_at = pg_catalog.now();
    end if;
  end if;
  perform ci_private.refresh_als_context(new.id);
  if tg_op = 'UPDATE' and v_leads is not null then
    perform ci_private.rescore_leads(new.id);
  end if;
  return null;
end
$$;


comment on function public.apply_learned_weights(uuid, jsonb, jsonb) is
'Apply ALS weights fitted outside the database (the sidecar''s ci fit-weights): p_weights {data_quality, '
'authority, company_fit, timing}, each 0.05..0.50, summing to 0.85 (else 22023); p_metrics the decision, '
'recorded (applied=false in it: nothing applied). Stores them at 4 decimals; when any lead is not scored '
'with them (or the client waits for a rescore), a client of at most rescore_inline_max leads (5000) is '
'rescored at once and a larger one queued for ci_jobs.rescore_pending (every 5 minutes), its next refresh, '
'or rescore_client_leads. Returns {applied, weights, previous_weights, rescored (leads '
'rescored in this call), rescore_queued, applied_at}. Owners, admins, service_role; others 42501.';

revoke execute on function ci_private.rescore_inline_leads(uuid) from public, anon, authenticated;
grant execute on function ci_private.rescore_inline_leads(uuid) to service_role;
