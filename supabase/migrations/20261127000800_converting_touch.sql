-- The converting touch (contract section 3), replacing 014's trigger, which
-- fired on every lead update, knew only the seed's action names, compared
-- against now() instead of the conversion time, could mark several touches
-- at one timestamp and never removed a mark.
--
-- State kept: a converted lead has status 'converted' and converted_at set; any
-- other lead has converted_at null. Exactly one touch per converted lead has
-- led_to_booking: its last outbound touch of the same client at or before
-- converted_at, ties broken by the later id. Paths:
--   * lead status becomes / stops being 'converted', or converted_at changes:
--     row triggers on leads (WHEN + UPDATE OF, so other updates pay nothing);
--   * an activity `meeting_booked` / `converted` is inserted: a row trigger on
--     activities (WHEN on the action) converts the lead at the activity's time;
--     the earliest recorded booking wins, a later one is a no-op;
--   * history imported out of order (touches inserted after the lead was
--     already converted): ci_private.backfill_converting_touches(client).

-- Re-derive the mark of one lead: set it on its converting touch, clear any other.
-- security definer: the mark is the layer's bookkeeping; the caller of the lead
-- update (an RPC user, the host's service) need not be allowed to write activities.
create or replace function ci_private.mark_converting_touch(p_lead_id uuid)
returns void
language plpgsql volatile security definer
set search_path = ''
as $$
begin
  -- PL/pgSQL rather than SQL: its plan is cached across the rows of a bulk update.
  with target as (
    select a.id
    from public.leads as l
    join public.activities as a
      on a.lead_id = l.id and a.client_id = l.client_id
    where l.id = p_lead_id
      and l.status = 'converted'
      and l.converted_at is not null
      and ci_private.is_outbound_action(a.action)
      and a.created_at <= l.converted_at
    order by a.created_at desc, a.id desc
    limit 1
  )
  update public.activities as a
  set led_to_booking = (a.id is not distinct from (select t.id from target as t))
  where a.lead_id = p_lead_id
    and (a.led_to_booking or a.id = (select t.id from target as t))
    and a.led_to_booking is distinct from (a.id is not distinct from (select t.id from target as t));
end
$$;

-- Keep converted_at consistent with status before a lead row is written.
create or replace function ci_private.leads_conversion_time()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.status::text = 'converted' then
    if tg_op = 'INSERT' then
      new.converted_at := coalesce(new.converted_at, pg_catalog.now());
    elsif old.status::text is distinct from 'converted' then
      -- Newly converted: the writer's own converted_at (a backfill) wins.
      if new.converted_at is null or new.converted_at is not distinct from old.converted_at then
        new.converted_at := pg_catalog.now();
      end if;
    elsif new.converted_at is null then
      -- Still converted: a converted lead keeps a conversion time.
      new.converted_at := old.converted_at;
    end if;
  else
    new.converted_at := null;
  end if;
  return new;
end
$$;

-- After a lead's conversion state changed, move its mark.
-- security definer: as mark_converting_touch.
create or replace function ci_private.leads_mark_converting_touch()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform ci_private.mark_converting_touch(new.id);
  return null;
end
$$;

-- A booking recorded as an activity converts its lead at the activity's time.
-- security definer: a writer of activities (the host's booking webhook) need not
-- be allowed to update leads; the client check below keeps tenants apart.
create or replace function ci_private.activities_record_conversion()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_lead record;
begin
  if new.lead_id is null then
    raise exception 'booking activity % has no lead', new.id using errcode = 'not_null_violation';
  end if;

  select l.id, l.client_id, l.status::text as status, l.converted_at, l.deleted_at
  into v_lead
  from public.leads as l
  where l.id = new.lead_id
  for update;

  if not found then
    raise exception 'booking activity % refers to unknown lead %', new.id, new.lead_id
      using errcode = 'foreign_key_violation';
  end if;
  if v_lead.client_id is distinct from new.client_id then
    raise exception 'booking activity % is for client % but lead % belongs to client %',
      new.id, new.client_id, new.lead_id, v_lead.client_id
      using errcode = 'check_violation';
  end if;
  if v_lead.deleted_at is not null then
    -- Soft-deleted leads are ignored everywhere: recorded, but no conversion.
    return null;
  end if;

  if v_lead.status is distinct from 'converted' then
    update public.leads
    set status = 'converted', converted_at = new.created_at
    where id = new.lead_id;
  elsif v_lead.converted_at is null or new.created_at < v_lead.converted_at then
    -- An earlier booking than the one on record: the earliest one wins.
    update public.leads
    set converted_at = new.created_at
    where id = new.lead_id;
  end if;
  -- Otherwise converted already, at or before this booking: nothing changes.
  return null;
end
$$;

drop trigger if exists leads_ci_conversion_time_ins on public.leads;
create trigger leads_ci_conversion_time_ins
before insert on public.leads
for each row
when (new.status::text = 'converted' or new.converted_at is not null)
execute function ci_private.leads_conversion_time();

drop trigger if exists leads_ci_conversion_time_upd on public.leads;
create trigger leads_ci_conversion_time_upd
before update of status, converted_at on public.leads
for each row
when (
  old.status is distinct from new.status
  or old.converted_at is distinct from new.converted_at
)
execute function ci_private.leads_conversion_time();

drop trigger if exists leads_ci_mark_converting_touch on public.leads;
create trigger leads_ci_mark_converting_touch
after update of status, converted_at on public.leads
for each row
when (
  old.converted_at is distinct from new.converted_at
  or (old.status::text = 'converted') is distinct from (new.status::text = 'converted')
)
execute function ci_private.leads_mark_converting_touch();

drop trigger if exists activities_ci_record_conversion on public.activities;
create trigger activities_ci_record_conversion
after insert on public.activities
for each row
when (ci_private.is_conversion_action(new.action))
execute function ci_private.activities_record_conversion();

-- Re-derive every mark of a client from its history, in one set-based statement.
-- Returns the number of activities whose mark changed. Converted leads that
-- predate this layer (converted_at null) first get the time of their earliest
-- booking activity, else of their last update.
-- security definer: a repair run by an owner or the scheduler; writes only the
-- client's own rows.
create or replace function ci_private.backfill_converting_touches(p_client_id uuid)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_changed integer;
begin
  if p_client_id is null then
    raise exception 'backfill_converting_touches: client id is null' using errcode = 'null_value_not_allowed';
  end if;

  with conv as (
    -- Converted leads with their conversion time; legacy rows (converted_at
    -- null) get their earliest booking activity's time, else their last update.
    select
      l.id,
      coalesce(
        l.converted_at,
        (select min(b.created_at) from public.activities as b
         where b.lead_id = l.id and ci_private.is_conversion_action(b.action)),
        l.updated_at,
        pg_catalog.now()
      ) as converted_at,
      l.converted_at is null as legacy
    from public.leads as l
    where l.client_id = p_client_id
      and l.status = 'converted'
  ),
  fix_time as (
    update public.leads as l
    set converted_at = c.converted_at
    from conv as c
    where l.id = c.id and c.legacy
  ),
  target as (
    select distinct on (a.lead_id) a.id
    from conv as c
    join public.activities as a
      on a.lead_id = c.id and a.client_id = p_client_id
    where ci_private.is_outbound_action(a.action)
      and a.created_at <= c.converted_at
    order by a.lead_id, a.created_at desc, a.id desc
  ),
  wanted as (
    select a.id, (t.id is not null) as mark
    from public.activities as a
    left join target as t on t.id = a.id
    where a.led_to_booking
      and (a.client_id = p_client_id
        or a.lead_id in (select l.id from public.leads as l where l.client_id = p_client_id))
    union
    select t.id, true from target as t
  ),
  changed as (
    update public.activities as a
    set led_to_booking = w.mark
    from wanted as w
    where a.id = w.id
      and a.led_to_booking is distinct from w.mark
    returning a.id
  )
  select count(*) into v_changed from changed;
  return v_changed;
end
$$;

revoke execute on function ci_private.mark_converting_touch(uuid) from public, anon, authenticated;
revoke execute on function ci_private.backfill_converting_touches(uuid) from public, anon, authenticated;
grant execute on function ci_private.backfill_converting_touches(uuid) to service_role;
