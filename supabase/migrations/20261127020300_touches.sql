-- The shared per-touch relation of the WHEN and HOW detectors (and of WHAT's
-- trial outcomes), built once per refresh instead of re-scanning activities in
-- every query.
--
-- ci_private.prepare_touches(client) builds three temporary tables, dropped at
-- the end of the transaction:
--   pg_temp.ci_touch_leads  one row per live lead (shape: ci_private.touch_lead)
--   pg_temp.ci_touches      one row per outbound touch on a known channel, in
--                           send order (shape: ci_private.touch)
--   pg_temp.ci_touch_meta   which client, when, what was skipped and why.
-- The touches come from ci_private.lead_touches (lead_touches migration),
-- numbered in send order with their gaps, channel sets and sequences when
-- they were written, so a build neither reads nor numbers activities; each
-- carries its content key, the WHAT detector's way to its content features
-- (content_features migration). ci_private.ensure_touches(client)
-- builds the relation unless it was built for the same client in the same
-- SQL statement: a refresh that calls prepare_touches and then the detectors
-- builds once; a detector called on its own builds fresh, so it never reads a
-- stale relation.
--
-- The unit of the detectors is the touch as a trial: `booked` is 1 for the
-- converting touch (led_to_booking), 0 for a touch whose outcome is known not
-- to be a booking, null when the touch is no trial: sent after the conversion,
-- or the last touch of a lead still in sequence (its booking may yet come).
-- Every rate is then a per-touch booking hazard, P(this touch books | it was
-- sent), and each lead counts only with the touches it got.
--
-- Skipped and counted (ci_touch_meta.skipped), never fatal: touches on a
-- channel the detectors do not know (e.g. 'mail'), and invalid time zone names
-- (the next zone in the contract's order is used instead). Junk snapshots are
-- the WHAT detector's to count: the touch still counts for timing and channels.

-- Small codes keep the relation narrow; these functions translate them.
-- Channel code of a channel: 1 email, 2 linkedin, 3 sms, 4 voice; null for any
-- other channel (e.g. mail). Compares the enum itself: no text per row.
drop function if exists ci_private.channel_code(text);
create or replace function ci_private.channel_code(p_channel public.channel_type)
returns smallint
language sql immutable parallel safe
as $$
  select (case p_channel when 'email' then 1 when 'linkedin' then 2 when 'sms' then 3 when 'voice' then 4 end)::smallint
$$;

-- Outbound touches on a channel the detectors do not know (none, or a value
-- the host adds to its enum) are counted, never read: their own partial index
-- keeps that count from scanning every outbound touch.
create index if not exists activities_ci_unknown_channel_idx
on public.activities (client_id, lead_id)
where ci_private.is_outbound_action(action) and ci_private.channel_code(channel) is null;

-- Channel name of a channel code.
create or replace function ci_private.channel_name(p_code integer)
returns text
language sql immutable parallel safe
as $$
  select (array['email', 'linkedin', 'sms', 'voice'])[p_code]
$$;

-- Tier code of an ALS tier: 1 hot .. 5 dead, 0 unscored (null or unknown).
create or replace function ci_private.tier_code(p_tier text)
returns smallint
language sql immutable parallel safe
as $$
  select coalesce(array_position(array['hot', 'warm', 'cool', 'cold', 'dead'], lower(btrim(p_tier))), 0)::smallint
$$;

-- Tier name of a tier code.
create or replace function ci_private.tier_name(p_code integer)
returns text
language sql immutable parallel safe
as $$
  select coalesce((array['hot', 'warm', 'cool', 'cold', 'dead'])[p_code], 'unscored')
$$;

-- Day name of a day-of-week index (0 Sunday .. 6 Saturday, as date_part('dow')).
create or replace function ci_private.day_name(p_dow integer)
returns text
language sql immutable parallel safe
as $$
  select (array['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'])[p_dow + 1]
$$;

-- Number of channels in a channel mask (ci_private.touch.channel_mask).
create or replace function ci_private.channel_count(p_mask integer)
returns integer
language sql immutable parallel safe
as $$
  select (p_mask & 1) + (p_mask >> 1 & 1) + (p_mask >> 2 & 1) + (p_mask >> 3 & 1)
$$;

-- The channels of a sequence code (ci_private.touch.prefix_code: three bits
-- per channel code, the first touch's in the lowest bits), first touch first.
create or replace function ci_private.sequence_channels(p_code integer, p_length integer)
returns text []
language sql immutable parallel safe
as $$
  select array_agg(ci_private.channel_name(p_code >> (3 * (k - 1)) & 7) order by k)
  from generate_series(1, p_length) as k
$$;

-- The code of the first p_length channels of a sequence code.
create or replace function ci_private.sequence_prefix(p_code integer, p_length integer)
returns integer
language sql immutable parallel safe
as $$
  select p_code & ((1 << (3 * p_length)) - 1)
$$;

-- Shapes of the temporary tables (types, so that other functions and
-- plpgsql_check can name them). Dropped and re-created: they hold no data.
drop type if exists ci_private.touch_lead;
create type ci_private.touch_lead as (
  lead_no integer,                -- 1..n, the relation's own key for a lead
  lead_id uuid,
  outcome smallint,               -- ci_private.lead_outcome: 1, 0, null (open)
  tier smallint,                  -- ci_private.tier_code(leads.als_tier)
  converted_at timestamptz,
  zone text,                      -- the zone its touches are read in
  zone_invalid boolean            -- a zone on the way there was not a valid name
);

drop type if exists ci_private.touch;
create type ci_private.touch as (
  touch_id uuid,                  -- activities.id
  lead_no integer,
  position smallint,              -- 1.. in send order (created_at, id)
  channel smallint,               -- ci_private.channel_code
  created_at timestamptz,
  local_dow smallint,             -- 0 Sunday .. 6 Saturday, in the lead's zone
  local_hour smallint,            -- 0..23, in the lead's zone
  gap_days real,                  -- days since the lead's previous touch
  led_to_booking boolean,
  after_conversion boolean,
  booked smallint,                -- 1 converting touch, 0 known non-booking, null no trial
  outcome smallint,               -- the lead's outcome
  tier smallint,                  -- the lead's tier code
  first_channel smallint,         -- channel of the lead's first touch
  channel_mask smallint,          -- channels of touches 1..position, one bit each
  prefix_code integer,            -- channels of touches 1..position (<= 6), 3 bits each, first lowest
  content_key integer             -- activities.content_key: its content features (null: none, or not yet keyed)
);

-- Build the per-touch relation unless it was built for this client in this
-- same SQL statement (a refresh prepares once, then runs the detectors).
-- security definer: as prepare_touches, which it calls (and which checks access).
create or replace function ci_private.ensure_touches(p_client_id uuid)
returns void
language plpgsql volatile security definer
set search_path = ''
as $$
begin
  perform 'PRAGMA:TABLE: ci_touch_meta (client_id uuid, built_at timestamptz, leads integer, touches integer, decided_leads integer, skipped jsonb)';
  if pg_catalog.to_regclass('pg_temp.ci_touch_meta') is not null then
    if exists (
      select 1 from pg_temp.ci_touch_meta as m
      where m.client_id = p_client_id and m.built_at = pg_catalog.statement_timestamp()
    ) then
      return;
    end if;
  end if;
  perform ci_private.prepare_touches(p_client_id);
end
$$;

-- Confidence of a pattern from its sample (the seed's sigmoid, centred on 100).
create or replace function ci_private.pattern_confidence(p_sample bigint)
returns double precision
language sql immutable parallel safe
as $$
  select round((1 / (1 + exp(-(coalesce(p_sample, 0) - 100) / 30.0)))::numeric, 2)::double precision
$$;

-- Whether a WHAT, WHEN or HOW pattern has the data to name anything: at least
-- 10 bookings and 30 decided leads.
create or replace function ci_private.enough_data(p_bookings bigint, p_sample bigint)
returns boolean
language sql immutable parallel safe
as $$
  select coalesce(p_bookings, 0) >= 10 and coalesce(p_sample, 0) >= 30
$$;

-- The keys every WHAT, WHEN and HOW pattern starts with (type, version, when,
-- sample, confidence, whether data is insufficient, and then why).
create or replace function ci_private.pattern_envelope(
  p_type text, p_sample bigint, p_bookings bigint, p_bookings_of text default 'bookings'
)
returns jsonb
language sql stable parallel safe
as $$
  select jsonb_build_object(
    'type', p_type,
    'version', '1.0',
    'computed_at', pg_catalog.now(),
    'sample_size', p_sample,
    'confidence', case when e.enough then ci_private.pattern_confidence(p_sample) else 0 end,
    'insufficient_data', not e.enough
  ) || case when e.enough then '{}'::jsonb else jsonb_build_object(
    'reason', format('insufficient data: %s %s, %s decided leads (need 10 and 30)', p_bookings, p_bookings_of, p_sample)
  ) end
  from (select ci_private.enough_data(p_bookings, p_sample) as enough) as e
$$;

-- The segments of a rate_table result with the given significance ('above':
-- best first, as ranked; 'below': worst first).
create or replace function ci_private.significant(p_ranked jsonb, p_significance text)
returns jsonb
language sql immutable parallel safe
as $$
  select coalesce(jsonb_agg(r.value order by
    case when p_significance = 'below' then -r.ord else r.ord end), '[]'::jsonb)
  from jsonb_array_elements(coalesce(p_ranked, '[]'::jsonb)) with ordinality as r (value, ord)
  where r.value ->> 'significance' = p_significance
$$;

revoke execute on function ci_private.ensure_touches(uuid) from public, anon, authenticated;
grant execute on function ci_private.ensure_touches(uuid) to service_role;

-- Pure helpers: anyone who may run the detectors' SQL may run them.
revoke execute on function ci_private.channel_code(public.channel_type) from public, anon;
revoke execute on function ci_private.channel_name(integer) from public, anon;
revoke execute on function ci_private.tier_code(text) from public, anon;
revoke execute on function ci_private.tier_name(integer) from public, anon;
revoke execute on function ci_private.day_name(integer) from public, anon;
revoke execute on function ci_private.channel_count(integer) from public, anon;
revoke execute on function ci_private.sequence_channels(integer, integer) from public, anon;
revoke execute on function ci_private.sequence_prefix(integer, integer) from public, anon;
revoke execute on function ci_private.pattern_confidence(bigint) from public, anon;
revoke execute on function ci_private.enough_data(bigint, bigint) from public, anon;
revoke execute on function ci_private.pattern_envelope(text, bigint, bigint, text) from public, anon;
revoke execute on function ci_private.significant(jsonb, text) from public, anon;
grant execute on function ci_private.channel_code(public.channel_type) to authenticated, service_role;
grant execute on function ci_private.channel_name(integer) to authenticated, service_role;
grant execute on function ci_private.tier_code(text) to authenticated, service_role;
grant execute on function ci_private.tier_name(integer) to authenticated, service_role;
grant execute on function ci_private.day_name(integer) to authenticated, service_role;
grant execute on function ci_private.channel_count(integer) to authenticated, service_role;
grant execute on function ci_private.sequence_channels(integer, integer) to authenticated, service_role;
grant execute on function ci_private.sequence_prefix(integer, integer) to authenticated, service_role;
grant execute on function ci_private.pattern_confidence(bigint) to authenticated, service_role;
grant execute on function ci_private.enough_data(bigint, bigint) to authenticated, service_role;
grant execute on function ci_private.pattern_envelope(text, bigint, bigint, text) to authenticated, service_role;
grant execute on function ci_private.significant(jsonb, text) to authenticated, service_role;
