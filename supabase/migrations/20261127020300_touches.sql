-- The shared per-touch relation of the WHAT, WHEN and HOW detectors (and any
-- other that wants it), built once per refresh instead of re-scanning
-- activities in every query.
--
-- ci_private.prepare_touches(client) reads the client's non-deleted leads and
-- their activities once (one sorted pass) into two temporary tables, dropped at
-- the end of the transaction:
--   pg_temp.ci_touch_leads  one row per lead (shape: ci_private.touch_lead)
--   pg_temp.ci_touches      one row per outbound touch (shape: ci_private.touch)
-- plus pg_temp.ci_touch_meta (which client, when, what was skipped and why).
-- ci_private.ensure_touches(client) builds them unless they were built for the
-- same client in the same SQL statement: a refresh that calls prepare_touches
-- and then the detectors builds once; a detector called on its own builds
-- fresh, so it never reads a stale relation.
--
-- The unit of the detectors is the touch as a trial: `booked` is 1 for the
-- converting touch (led_to_booking), 0 for a touch whose outcome is known not
-- to be a booking, null when the touch is no trial: sent after the conversion,
-- the last touch of a lead still in sequence (its booking may yet come), or a
-- skipped row. Every rate is then a per-touch booking hazard, P(this touch
-- books | it was sent), and each lead counts only with the touches it got.
--
-- Skipped and counted (ci_touch_meta.skipped), never fatal: touches on a
-- channel the detectors do not know (e.g. 'mail'), snapshots on activities that
-- are not outbound touches, junk snapshots (not an object, wrong types, empty
-- text, an oversized subject or body: the touch still counts for timing and
-- channels, its content does not), and invalid time zone names (the next zone
-- in the contract's order is used instead).

-- Small codes keep the relation narrow; these functions translate them.
-- Channel code of a channel name: 1 email, 2 linkedin, 3 sms, 4 voice; null for
-- any other channel.
create or replace function ci_private.channel_code(p_channel text)
returns smallint
language sql immutable parallel safe
as $$
  select (case p_channel when 'email' then 1 when 'linkedin' then 2 when 'sms' then 3 when 'voice' then 4 end)::smallint
$$;

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

-- The channels of a sequence code (ci_private.touch.prefix_code), first touch first.
create or replace function ci_private.sequence_channels(p_code integer, p_length integer)
returns text []
language sql immutable parallel safe
as $$
  select array_agg(ci_private.channel_name((p_code / (5 ^ (p_length - k))::integer) % 5) order by k)
  from generate_series(1, p_length) as k
$$;

-- Type-safe reads of one JSON value (null when it is of another type), so that
-- a junk snapshot is counted, never an error.
-- Whether a JSON value is absent, null or of the given type.
create or replace function ci_private.json_type_is(p_value jsonb, p_type text)
returns boolean
language sql immutable parallel safe
as $$
  select p_value is null or jsonb_typeof(p_value) in (p_type, 'null')
$$;

-- A JSON string's text.
create or replace function ci_private.json_text(p_value jsonb)
returns text
language sql immutable parallel safe
as $$
  select case when jsonb_typeof(p_value) = 'string' then p_value #>> '{}' end
$$;

-- A JSON boolean.
create or replace function ci_private.json_bool(p_value jsonb)
returns boolean
language sql immutable parallel safe
as $$
  select case when jsonb_typeof(p_value) = 'boolean' then (p_value)::boolean end
$$;

-- 'true' / 'false' as a boolean; anything else null (never an error).
create or replace function ci_private.text_bool(p_value text)
returns boolean
language sql immutable parallel safe
as $$
  select case p_value when 'true' then true when 'false' then false end
$$;

-- A JSON number as an integer, rounded and clamped to 0..1e9.
create or replace function ci_private.json_int(p_value jsonb)
returns integer
language sql immutable parallel safe
as $$
  select case when jsonb_typeof(p_value) = 'number' then least(greatest((p_value)::float8, 0), 1e9)::integer end
$$;

-- The text to read labels from when an engine's snapshot does not name them:
-- its subject and body, or null (no reading) when the snapshot names every
-- label, was derived (read when it was derived), has no text or too much.
-- ci_private.keyword_labels is strict, so null costs nothing.
create or replace function ci_private.label_text(
  p_subject jsonb, p_body jsonb, p_pain_points jsonb, p_pain_points_used jsonb, p_cta jsonb, p_cta_used jsonb,
  p_angle jsonb, p_derived jsonb
)
returns text
language sql immutable parallel safe
as $$
  select case when p_derived is distinct from 'true'::jsonb
    and (p_pain_points is null and p_pain_points_used is null or p_cta is null and p_cta_used is null or p_angle is null)
    and (jsonb_typeof(p_subject) = 'string' or jsonb_typeof(p_body) = 'string')
    and coalesce(pg_column_size(p_subject), 0) <= 1000 and coalesce(pg_column_size(p_body), 0) <= 100000
    then concat_ws(' ', ci_private.json_text(p_subject), ci_private.json_text(p_body))
  end
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

drop type if exists ci_private.touch_raw;
create type ci_private.touch_raw as (
  touch_id uuid,
  lead_id uuid,
  created_at timestamptz,
  channel smallint,
  led_to_booking boolean,
  skip_reason text,
  junk_reason text,
  derived boolean,
  has_text boolean,
  subject text,
  pain_points jsonb,
  cta text,
  angle text,
  word_count integer,
  char_count integer,
  pers_company boolean,
  pers_news boolean,
  pers_mutual boolean,
  pers_industry boolean,
  pers_level integer
);

drop type if exists ci_private.touch;
create type ci_private.touch as (
  touch_id uuid,                  -- activities.id
  lead_no integer,
  position smallint,              -- 1.. in send order (created_at, id); null if skipped
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
  prefix_code integer,            -- channels of touches 1..position (<= 6), base 5
  skip_reason text,               -- why the row is not a touch: unknown_channel, not_outbound
  junk_reason text,               -- why the content is not used: not_object, wrong_type, empty, oversized
  derived boolean,                -- the snapshot was derived from subject / preview / metadata
  has_text boolean,               -- a usable snapshot with a subject or body
  subject text,
  pain_points jsonb,              -- array of labels
  cta text,
  angle text,
  word_count integer,
  char_count integer,
  pers_company boolean,
  pers_news boolean,
  pers_mutual boolean,
  pers_industry boolean,
  pers_level integer
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
revoke execute on function ci_private.channel_code(text) from public, anon;
revoke execute on function ci_private.channel_name(integer) from public, anon;
revoke execute on function ci_private.tier_code(text) from public, anon;
revoke execute on function ci_private.tier_name(integer) from public, anon;
revoke execute on function ci_private.day_name(integer) from public, anon;
revoke execute on function ci_private.channel_count(integer) from public, anon;
revoke execute on function ci_private.sequence_channels(integer, integer) from public, anon;
revoke execute on function ci_private.json_type_is(jsonb, text) from public, anon;
revoke execute on function ci_private.json_text(jsonb) from public, anon;
revoke execute on function ci_private.json_bool(jsonb) from public, anon;
revoke execute on function ci_private.text_bool(text) from public, anon;
revoke execute on function ci_private.json_int(jsonb) from public, anon;
revoke execute on function ci_private.label_text(jsonb, jsonb, jsonb, jsonb, jsonb, jsonb, jsonb, jsonb) from public, anon;
revoke execute on function ci_private.pattern_confidence(bigint) from public, anon;
revoke execute on function ci_private.significant(jsonb, text) from public, anon;
grant execute on function ci_private.channel_code(text) to authenticated, service_role;
grant execute on function ci_private.channel_name(integer) to authenticated, service_role;
grant execute on function ci_private.tier_code(text) to authenticated, service_role;
grant execute on function ci_private.tier_name(integer) to authenticated, service_role;
grant execute on function ci_private.day_name(integer) to authenticated, service_role;
grant execute on function ci_private.channel_count(integer) to authenticated, service_role;
grant execute on function ci_private.sequence_channels(integer, integer) to authenticated, service_role;
grant execute on function ci_private.json_type_is(jsonb, text) to authenticated, service_role;
grant execute on function ci_private.json_text(jsonb) to authenticated, service_role;
grant execute on function ci_private.json_bool(jsonb) to authenticated, service_role;
grant execute on function ci_private.text_bool(text) to authenticated, service_role;
grant execute on function ci_private.json_int(jsonb) to authenticated, service_role;
grant execute on function ci_private.label_text(jsonb, jsonb, jsonb, jsonb, jsonb, jsonb, jsonb, jsonb)
to authenticated, service_role;
grant execute on function ci_private.pattern_confidence(bigint) to authenticated, service_role;
grant execute on function ci_private.significant(jsonb, text) to authenticated, service_role;
