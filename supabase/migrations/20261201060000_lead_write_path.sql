-- The host's lead writes, cheaper (issue 15, part 2): what one lead status ->
-- converted costs the host, and every other lead update. Same rules, same
-- results (contract sections 3 and 4); measured in docs/performance-leads.md
-- with scripts/bench/bench_lead_writes.py. Where the time went, per
-- single-row UPDATE of a lead's status to converted (a 5,000-lead client):
--   * the mark (AFTER trigger -> remark_leads): its statements took the lead
--     as an array, so PL/pgSQL planned them again at every call (custom plans
--     over a table with nine partial indexes): about 1.5 ms of 1.8 ms;
--   * the scoring trigger's WHEN clause: sixteen comparisons, which the
--     executor reads back from the catalog and compiles once per statement,
--     i.e. once per row for single-row writes (some 40 us), although a status
--     change needs one comparison;
--   * lookups that a status change between two open statuses does not need,
--     and a second security-definer call (the mark trigger calling
--     remark_leads). (Joining the conversion time's two lookups, or the
--     mark's three, into one statement was measured slower: the executor
--     start-up of the larger plan.)

-- After a lead's conversion state changed (by a writer), move its mark: set
-- it on the converting touch, clear it on every other touch of the lead (as
-- ci_private.remark_leads does for many leads). The statements take the lead
-- id as a scalar so that their plans are cached (generic) after the first
-- calls of a session; nothing is written when the mark is where it belongs
-- (a re-timed conversion that keeps its touch), and the usual case (a newly
-- converted lead) updates one touch by its key.
-- security definer: the mark is the layer's bookkeeping; the writer of a lead
-- need not be allowed to update activities.
create or replace function ci_private.leads_mark_converting_touch()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_prev text;
  v_at timestamptz;
  v_client uuid;
  v_target uuid;
  v_target_marked boolean;
  v_others uuid [];
begin
  if ci_private.is_deriving() then
    return null;
  end if;
  -- The lead as it is now (as remark_leads reads it), its converting touch
  -- and its other marked touches: three index probes (simple statements:
  -- measured cheaper than one statement that joins them).
  select l.converted_at, l.client_id into v_at, v_client
  from public.leads as l
  where l.id = new.id and l.status::text = 'converted' and l.converted_at is not null;
  if found then
    select a.id, coalesce(a.led_to_booking, false) into v_target, v_target_marked
    from public.activities as a
    where a.lead_id = new.id
      and a.client_id = v_client
      and ci_private.is_outbound_action(a.action)
      and a.created_at > '-infinity'::timestamptz
      and a.created_at < 'infinity'::timestamptz
      and a.created_at <= v_at
    order by a.created_at desc, a.id desc
    limit 1;
  end if;
  v_others := array(
    select a.id from public.activities as a
    where a.lead_id = new.id and coalesce(a.led_to_booking, false) and a.id is distinct from v_target
  );
  if cardinality(v_others) = 0 and (v_target is null or v_target_marked) then
    return null;
  end if;

  v_prev := pg_catalog.current_setting('ci.deriving', true);
  perform pg_catalog.set_config('ci.deriving', 'on', true);
  if cardinality(v_others) = 0 then
    -- A lead newly converted: mark one touch, by its key.
    update public.activities as a set led_to_booking = true where a.id = v_target;
  else
    -- A mark moves or goes (re-timed, un-converted).
    update public.activities as a
    set led_to_booking = (a.id is not distinct from v_target)
    where a.id = any(v_others) or (a.id = v_target and not v_target_marked);
  end if;
  perform pg_catalog.set_config('ci.deriving', coalesce(v_prev, ''), true);
  return null;
end
$$;

-- Before a lead row is written by a writer other than the layer: keep
-- converted_at consistent with status, record the status path (S, U) and
-- apply the earliest booking after the last un-conversion (the rules of the
-- conversion_history migration, unchanged). A status change between two
-- statuses other than converted only clears converted_at: it reads nothing.
-- security definer: writes the layer's own lead_conversion_status.
create or replace function ci_private.leads_conversion_time()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_unconverted_at timestamptz;
  v_has_row boolean;
  v_booking timestamptz;
  v_latest timestamptz;
begin
  if ci_private.is_deriving() then
    return new;
  end if;
  if tg_op = 'INSERT' then
    -- A new lead has no bookings: its state is the writer's (S = converted_at,
    -- read from the lead itself; no status row needed).
    if new.status::text = 'converted' then
      new.converted_at := coalesce(new.converted_at, pg_catalog.now());
    else
      new.converted_at := null;
    end if;
    return new;
  end if;
  if new.status::text is distinct from 'converted' and old.status::text is distinct from 'converted' then
    -- Neither converted before nor now: no conversion, no un-conversion.
    new.converted_at := null;
    return new;
  end if;

  select r.unconverted_at into v_unconverted_at
  from ci_private.lead_conversion_status as r where r.lead_id = new.id;
  v_has_row := found;
  select
    min(a.created_at) filter (where a.created_at > coalesce(v_unconverted_at, '-infinity'::timestamptz)),
    max(a.created_at)
  into v_booking, v_latest
  from public.activities as a
  where a.lead_id = new.id
    and a.client_id = new.client_id
    and ci_private.is_conversion_action(a.action)
    and a.created_at > '-infinity'::timestamptz
    and a.created_at < 'infinity'::timestamptz;
  if new.deleted_at is not null then
    v_booking := null;
  end if;

  if new.status::text = 'converted' then
    if old.status::text is distinct from 'converted' then
      -- Newly converted: the writer's own converted_at (a backfill) wins.
      if new.converted_at is null or new.converted_at is not distinct from old.converted_at then
        new.converted_at := pg_catalog.now();
      end if;
    elsif new.converted_at is null then
      -- Still converted: a converted lead keeps a conversion time.
      new.converted_at := old.converted_at;
    end if;
    -- S is recorded only where the lead cannot tell it: a row exists already
    -- (an earlier un-conversion), or a booking at or before S (which would
    -- move converted_at off S, or explain it). Otherwise S = converted_at,
    -- which is how a lead without a row is read.
    if v_has_row or v_booking <= new.converted_at then
      insert into ci_private.lead_conversion_status as r (lead_id, client_id, status_converted_at, unconverted_at)
      values (new.id, new.client_id, new.converted_at, v_unconverted_at)
      on conflict (lead_id) do update
        set status_converted_at = excluded.status_converted_at, updated_at = pg_catalog.now();
    end if;
    -- An earlier booking than the status path's time: the earliest wins.
    new.converted_at := least(new.converted_at, v_booking);
  else
    -- Un-converted by a writer: every booking recorded so far is overruled.
    new.converted_at := null;
    insert into ci_private.lead_conversion_status as r (lead_id, client_id, status_converted_at, unconverted_at)
    values (new.id, new.client_id, null, greatest(pg_catalog.now(), v_latest))
    on conflict (lead_id) do update
      set status_converted_at = null, unconverted_at = excluded.unconverted_at, updated_at = pg_catalog.now();
  end if;
  return new;
end
$$;

-- The scoring trigger on updates, in two: a status change (a scored field,
-- contract section 4) is compared by one WHEN comparison, the other scored
-- fields by theirs. The executor reads a trigger's WHEN clause back from the
-- catalog and compiles it once per statement, i.e. once a row for the host's
-- single-row writes: the sixteen comparisons cost a status update about 40 us
-- before the function ran at all. The function, the columns that rescore and
-- the result are unchanged: a statement that changes the status and another
-- scored field rescores twice, with the same result.
drop trigger if exists leads_ci_score_upd on public.leads;
create trigger leads_ci_score_upd
before update of
client_id, email, email_verified, phone, phone_verified, linkedin_url, personal_email, title,
organization_industry, organization_employee_count, organization_country, organization_is_hiring,
organization_latest_funding_date, employment_start_date, bounce_count
on public.leads
for each row
when (
  old.client_id is distinct from new.client_id
  or old.email is distinct from new.email
  or old.email_verified is distinct from new.email_verified
  or old.phone is distinct from new.phone
  or old.phone_verified is distinct from new.phone_verified
  or old.linkedin_url is distinct from new.linkedin_url
  or old.personal_email is distinct from new.personal_email
  or old.title is distinct from new.title
  or old.organization_industry is distinct from new.organization_industry
  or old.organization_employee_count is distinct from new.organization_employee_count
  or old.organization_country is distinct from new.organization_country
  or old.organization_is_hiring is distinct from new.organization_is_hiring
  or old.organization_latest_funding_date is distinct from new.organization_latest_funding_date
  or old.employment_start_date is distinct from new.employment_start_date
  or old.bounce_count is distinct from new.bounce_count
)
execute function ci_private.leads_score();

drop trigger if exists leads_ci_score_status_upd on public.leads;
create trigger leads_ci_score_status_upd
before update of status on public.leads
for each row
when (old.status is distinct from new.status)
execute function ci_private.leads_score();
