-- The rules of the lead score (ALS), contract section 4, each in one place:
-- ci_private.als_parts_of (the five components of a lead as of a date, given
-- the client's ICP; ci_private.als_components wraps it for set-based use),
-- ci_private.als_score, ci_private.als_tier, ci_private.als_snapshot and the
-- weights in force. Pure (immutable or stable) SQL without SET clauses, so the
-- planner inlines them into the trigger's expressions and the set-based
-- statements (see the als_scoring migration). Timing is judged as of a date:
-- today (UTC) for the live score, the first outbound touch for the learning.
--
-- Rules where the contract is silent (one clear rule each, never an error):
--   * text is compared case-insensitively after trimming; titles by whole words
--     of ci_private.normalize_title (so "Sr. Manager" is a senior manager,
--     "Chief Executive Officer" a ceo, "Vice President" a vp, "Team Lead" a lead);
--     the chief officers cto/cfo/cmo/coo count as chief (22);
--   * an email / phone counts only when present (non-blank): verified 8 / 6,
--     else 4 / 3; LinkedIn URL and personal email when non-blank;
--   * employee counts <= 0 or null: no size points; ICP sizes are ranges 'a-b',
--     'a+' or 'a' (thousands separators allowed); a list with no valid range
--     counts as no list (the default bands apply);
--   * dates after the as-of date (a role not started yet, a future funding
--     round) give no timing points; "under 6 months" is strict, "within 12
--     months" inclusive;
--   * bounce_count null or negative counts as 0; a null status as no status;
--   * learned weights are used only when valid (ci_private.als_valid_weights),
--     else the defaults; they are used at 4 decimals (the rounding remainder
--     on one weight so that they still sum to 0.85), which makes the score
--     exact integer arithmetic; the weights used are recorded either way.

-- The five components, in the order of the snapshot.
do $types$
begin
  if pg_catalog.to_regtype('ci_private.als_parts') is null then
    create type ci_private.als_parts as (
      data_quality integer,
      authority integer,
      company_fit integer,
      timing integer,
      risk integer
    );
  end if;
end
$types$;

-- Canonical form of a job title: lower case, words of letters and digits
-- separated by one space, common abbreviations written one way, fillers
-- (of, the, and) dropped. "VP of Marketing" and "Vice President, Marketing"
-- both give 'vp marketing'. Null when no word is left.
create or replace function ci_private.normalize_title(p_title text)
returns text
language sql immutable parallel safe
as $$
  select nullif(btrim(
    replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(
      replace(replace(replace(replace(
        ' ' || regexp_replace(lower(p_title), '[^[:alnum:]]+', ' ', 'g') || ' ',
        ' vice president ', ' vp '),
      ' chief executive officer ', ' ceo '),
      ' chief technology officer ', ' cto '),
      ' chief technical officer ', ' cto '),
      ' chief financial officer ', ' cfo '),
      ' chief marketing officer ', ' cmo '),
      ' chief operating officer ', ' coo '),
      ' chief operations officer ', ' coo '),
      ' co founder ', ' cofounder '),
      ' dir ', ' director '),
      ' mgr ', ' manager '),
      ' sr ', ' senior '),
      ' of ', ' '),
      ' the ', ' '),
      ' and ', ' '),
      ' mktg ', ' marketing ')
  ), '')
$$;

-- Authority points of a normalised title padded with spaces (' vp marketing '):
-- the first keyword group that matches, in the contract's priority order.
create or replace function ci_private.als_authority_points(p_padded_key text)
returns integer
language sql immutable parallel safe
as $$
  select case
    when p_padded_key is null then 0
    when strpos(p_padded_key, ' owner ') > 0 or strpos(p_padded_key, ' ceo ') > 0
      or strpos(p_padded_key, ' founder ') > 0 or strpos(p_padded_key, ' cofounder ') > 0 then 25
    when strpos(p_padded_key, ' chief ') > 0 or strpos(p_padded_key, ' president ') > 0
      or strpos(p_padded_key, ' cto ') > 0 or strpos(p_padded_key, ' cfo ') > 0
      or strpos(p_padded_key, ' cmo ') > 0 or strpos(p_padded_key, ' coo ') > 0 then 22
    when strpos(p_padded_key, ' vp ') > 0 or strpos(p_padded_key, ' svp ') > 0
      or strpos(p_padded_key, ' evp ') > 0 then 18
    when strpos(p_padded_key, ' director ') > 0 or strpos(p_padded_key, ' head ') > 0 then 15
    when strpos(p_padded_key, ' senior manager ') > 0 then 10
    when strpos(p_padded_key, ' manager ') > 0 or strpos(p_padded_key, ' lead ') > 0 then 7
    else 5
  end
$$;

-- Risk points of a junior title (padded normalised key): 5, else 0.
create or replace function ci_private.als_junior_points(p_padded_key text)
returns integer
language sql immutable parallel safe
as $$
  select case
    when strpos(p_padded_key, ' assistant ') > 0 or strpos(p_padded_key, ' intern ') > 0
      or strpos(p_padded_key, ' student ') > 0 or strpos(p_padded_key, ' coordinator ') > 0
      or strpos(p_padded_key, ' receptionist ') > 0 then 5
    else 0
  end
$$;

-- Comparison key of an industry, country or ICP entry: trimmed, lower case.
create or replace function ci_private.text_key(p_value text)
returns text
language sql immutable parallel safe
as $$
  select nullif(lower(btrim(p_value)), '')
$$;

-- Comparison keys of an ICP list (nulls and blanks dropped); null when none.
create or replace function ci_private.text_keys(p_values text [])
returns text []
language sql immutable parallel safe
as $$
  select array_agg(distinct ci_private.text_key(v.x))
  from unnest(p_values) as v (x)
  where ci_private.text_key(v.x) is not null
$$;

-- The client's company-size ranges ('11-50', '201+', '7', '1,000-5,000') as
-- one multirange of employee counts; null when the list has no valid range.
create or replace function ci_private.icp_size_ranges(p_sizes text [])
returns int4multirange
language sql immutable parallel safe
as $$
  select range_agg(int4range(m.lo, m.hi, '[]'))
  from unnest(p_sizes) as v (x)
  cross join lateral regexp_match(
    regexp_replace(v.x, '[\s,]', '', 'g'), '^(\d{1,9})(?:[-–](\d{1,9})|(\+))?$'
  ) as r (g)
  cross join lateral (
    select
      r.g[1]::integer as lo,
      case when r.g[3] is not null then null else coalesce(r.g[2], r.g[1])::integer end as hi
  ) as m
  where r.g is not null and (m.hi is null or m.hi >= m.lo)
$$;

-- Default ALS weights (contract section 4); the other 0.15 is the risk allowance.
create or replace function ci_private.als_default_weights()
returns jsonb
language sql immutable parallel safe
as $$
  select '{"data_quality": 0.20, "authority": 0.25, "company_fit": 0.25, "timing": 0.15}'::jsonb
$$;

-- Valid ALS weights: an object with exactly the four keys, each a JSON number in
-- [0.05, 0.50], summing to 0.85 within 1e-6. (JSON numbers are always finite.)
create or replace function ci_private.als_valid_weights(p_weights jsonb)
returns boolean
language sql immutable parallel safe
as $$
  select coalesce(
    jsonb_typeof(p_weights) = 'object'
    and (select count(*) from jsonb_object_keys(p_weights)) = 4
    and jsonb_typeof(p_weights -> 'data_quality') = 'number'
    and jsonb_typeof(p_weights -> 'authority') = 'number'
    and jsonb_typeof(p_weights -> 'company_fit') = 'number'
    and jsonb_typeof(p_weights -> 'timing') = 'number'
    and (p_weights ->> 'data_quality')::numeric between 0.05 and 0.50
    and (p_weights ->> 'authority')::numeric between 0.05 and 0.50
    and (p_weights ->> 'company_fit')::numeric between 0.05 and 0.50
    and (p_weights ->> 'timing')::numeric between 0.05 and 0.50
    and abs(
      (p_weights ->> 'data_quality')::numeric + (p_weights ->> 'authority')::numeric
      + (p_weights ->> 'company_fit')::numeric + (p_weights ->> 'timing')::numeric - 0.85
    ) <= 1e-6,
    false
  )
$$;

-- Valid weights at 4 decimals, still summing to exactly 0.85: each rounded,
-- the remainder (at most 0.0002 either way) taken from the largest weight or
-- given to the smallest, which keeps every weight inside its bounds.
create or replace function ci_private.als_quantize_weights(p_weights jsonb)
returns jsonb
language sql immutable parallel safe
as $$
  with w as (
    select e.key, round(e.value::numeric, 4) as v
    from jsonb_each_text(p_weights) as e (key, value)
  ),
  d as (select 0.85 - sum(w.v) as diff from w),
  pick as (
    select w.key
    from w cross join d
    order by case when d.diff > 0 then w.v else -w.v end, w.key
    limit 1
  )
  select jsonb_object_agg(w.key, w.v + case when w.key = (select pick.key from pick) then d.diff else 0 end)
  from w cross join d
$$;

-- The weights in force: the learned ones when valid (at 4 decimals), else the defaults.
create or replace function ci_private.als_weights_in_force(p_learned jsonb)
returns jsonb
language sql immutable parallel safe
as $$
  select case
    when ci_private.als_valid_weights(p_learned) then ci_private.als_quantize_weights(p_learned)
    else ci_private.als_default_weights()
  end
$$;

-- Weights (at 4 decimals) in units of 0.0001, in the order data_quality,
-- authority, company_fit, timing: what ci_private.als_score computes with.
create or replace function ci_private.als_weight_units(p_weights jsonb)
returns integer []
language sql immutable parallel safe
as $$
  select array[
    round((p_weights ->> 'data_quality')::numeric * 10000)::integer,
    round((p_weights ->> 'authority')::numeric * 10000)::integer,
    round((p_weights ->> 'company_fit')::numeric * 10000)::integer,
    round((p_weights ->> 'timing')::numeric * 10000)::integer
  ]
$$;

-- Timing points of the time in role as of a date: under 6 months 6, under 12
-- months 3; a start after the as-of date (not in the role yet) or none: 0.
-- (6 points is what the WHO detector calls a new role.)
create or replace function ci_private.als_role_points(p_start_date date, p_as_of date)
returns integer
language sql immutable parallel safe
as $$
  select case
    when p_start_date > p_as_of then 0
    when p_start_date > (p_as_of - interval '6 months') then 6
    when p_start_date > (p_as_of - interval '12 months') then 3
    else 0
  end
$$;

-- Timing points of the latest funding as of a date: within 12 months 4, within
-- 24 months 2; a funding after the as-of date or none: 0.
-- (4 points is what the WHO detector calls recently funded.)
create or replace function ci_private.als_funding_points(p_funding_date date, p_as_of date)
returns integer
language sql immutable parallel safe
as $$
  select case
    when p_funding_date > p_as_of then 0
    when p_funding_date >= (p_as_of - interval '12 months') then 4
    when p_funding_date >= (p_as_of - interval '24 months') then 2
    else 0
  end
$$;

-- The rules of the five components (contract section 4), as of a date, from a
-- lead's scored attributes and the points of its title (p_authority from
-- ci_private.als_authority_points, p_title_risk from ci_private.als_junior_points,
-- both of the normalised title): titles repeat, so set-based callers can score
-- each spelling once.
-- Scalar arguments and one row expression, so that the planner inlines it: the
-- row trigger evaluates it as a cached simple expression, the set-based paths
-- as part of their one statement (through ci_private.als_components).
-- p_industries / p_locations: ICP keys (ci_private.text_keys); p_sizes: the
-- client's size ranges (ci_private.icp_size_ranges), null for the default bands.
create or replace function ci_private.als_parts_of(
  p_authority integer,
  p_title_risk integer,
  p_email text,
  p_email_verified boolean,
  p_phone text,
  p_phone_verified boolean,
  p_linkedin_url text,
  p_personal_email text,
  p_industry text,
  p_employee_count integer,
  p_country text,
  p_is_hiring boolean,
  p_funding_date date,
  p_start_date date,
  p_bounce_count integer,
  p_status text,
  p_industries text [],
  p_sizes int4multirange,
  p_locations text [],
  p_as_of date
)
returns ci_private.als_parts
language sql immutable parallel safe
as $$
  select row(
    -- data_quality 0-20
    least(20,
      case
        when nullif(btrim(p_email), '') is null then 0
        when p_email_verified then 8
        else 4
      end
      + case
        when nullif(btrim(p_phone), '') is null then 0
        when p_phone_verified then 6
        else 3
      end
      + case when nullif(btrim(p_linkedin_url), '') is not null then 4 else 0 end
      + case when nullif(btrim(p_personal_email), '') is not null then 2 else 0 end
    ),
    -- authority 0-25
    coalesce(p_authority, 0),
    -- company_fit 0-25
    least(25,
      case when ci_private.text_key(p_industry) = any(p_industries) then 10 else 0 end
      + case
        when coalesce(p_employee_count, 0) <= 0 then 0
        when p_sizes is not null then
          case when p_sizes @> p_employee_count then 8 else 0 end
        when p_employee_count between 5 and 50 then 8
        when p_employee_count between 51 and 200 then 5
        when p_employee_count between 1 and 4 then 3
        else 0
      end
      + case when ci_private.text_key(p_country) = any(p_locations) then 7 else 0 end
    ),
    -- timing 0-15
    least(15,
      ci_private.als_role_points(p_start_date, p_as_of)
      + case when p_is_hiring then 5 else 0 end
      + ci_private.als_funding_points(p_funding_date, p_as_of)
    ),
    -- risk 0-15
    least(15,
      case when p_status = 'unsubscribed' then 15 else 0 end
      + case when coalesce(p_bounce_count, 0) > 0 or p_status = 'bounced' then 10 else 0 end
      + coalesce(p_title_risk, 0)
    )
  )::ci_private.als_parts
$$;

-- The five components of a lead as of a date: ci_private.als_parts_of with the
-- title normalised and scored once. A set-returning function so that it is
-- inlined into set-based statements (the rescore).
create or replace function ci_private.als_components(
  p_email text,
  p_email_verified boolean,
  p_phone text,
  p_phone_verified boolean,
  p_linkedin_url text,
  p_personal_email text,
  p_title text,
  p_industry text,
  p_employee_count integer,
  p_country text,
  p_is_hiring boolean,
  p_funding_date date,
  p_start_date date,
  p_bounce_count integer,
  p_status text,
  p_industries text [],
  p_sizes int4multirange,
  p_locations text [],
  p_as_of date
)
returns setof ci_private.als_parts
language sql immutable parallel safe rows 1
as $$
  select (ci_private.als_parts_of(
    ci_private.als_authority_points(t.padded_title), ci_private.als_junior_points(t.padded_title),
    p_email, p_email_verified, p_phone, p_phone_verified, p_linkedin_url, p_personal_email,
    p_industry, p_employee_count, p_country, p_is_hiring, p_funding_date, p_start_date, p_bounce_count,
    p_status, p_industries, p_sizes, p_locations, p_as_of
  )).*
  from (select ' ' || ci_private.normalize_title(p_title) || ' ' as padded_title offset 0) as t
$$;

-- Score of five components under weights in units of 0.0001
-- (ci_private.als_weight_units): 100 x the weighted share of each positive
-- component plus 15 x (1 - risk / 15), clipped to 0..100 and rounded half up.
-- Exact integer arithmetic: with W the weights in units, the score times 30000
-- is 15 dq W1 + 12 authority W2 + 12 fit W3 + 20 timing W4 + 30000 (15 - risk).
create or replace function ci_private.als_score(
  p_data_quality integer,
  p_authority integer,
  p_company_fit integer,
  p_timing integer,
  p_risk integer,
  p_weight_units integer []
)
returns integer
language sql immutable parallel safe
as $$
  select ((least(greatest(
    15::bigint * p_data_quality * p_weight_units[1]
    + 12::bigint * p_authority * p_weight_units[2]
    + 12::bigint * p_company_fit * p_weight_units[3]
    + 20::bigint * p_timing * p_weight_units[4]
    + 30000::bigint * (15 - p_risk),
    0), 3000000) + 15000) / 30000)::integer
$$;

-- Tier of a score: hot >= 85, warm 60-84, cool 35-59, cold 20-34, dead < 20.
create or replace function ci_private.als_tier(p_score integer)
returns text
language sql immutable parallel safe
as $$
  select case
    when p_score >= 85 then 'hot'
    when p_score >= 60 then 'warm'
    when p_score >= 35 then 'cool'
    when p_score >= 20 then 'cold'
    else 'dead'
  end
$$;

-- The als_components snapshot of five components.
-- Stable only because jsonb_build_object is.
create or replace function ci_private.als_snapshot(p_parts ci_private.als_parts)
returns jsonb
language sql stable parallel safe
as $$
  select jsonb_build_object(
    'data_quality', p_parts.data_quality,
    'authority', p_parts.authority,
    'company_fit', p_parts.company_fit,
    'timing', p_parts.timing,
    'risk', p_parts.risk
  )
$$;

-- The live score's as-of date: today in UTC.
create or replace function ci_private.als_today()
returns date
language sql stable parallel safe
as $$
  select (pg_catalog.now() at time zone 'UTC')::date
$$;

-- Pure helpers: anyone who may use the layer may call them.
grant execute on function ci_private.normalize_title(text) to authenticated, service_role;
grant execute on function ci_private.als_authority_points(text) to authenticated, service_role;
grant execute on function ci_private.als_junior_points(text) to authenticated, service_role;
grant execute on function ci_private.text_key(text) to authenticated, service_role;
grant execute on function ci_private.text_keys(text []) to authenticated, service_role;
grant execute on function ci_private.icp_size_ranges(text []) to authenticated, service_role;
grant execute on function ci_private.als_default_weights() to authenticated, service_role;
grant execute on function ci_private.als_valid_weights(jsonb) to authenticated, service_role;
grant execute on function ci_private.als_weights_in_force(jsonb) to authenticated, service_role;
grant execute on function ci_private.als_quantize_weights(jsonb) to authenticated, service_role;
grant execute on function ci_private.als_weight_units(jsonb) to authenticated, service_role;
grant execute on function ci_private.als_components(
  text, boolean, text, boolean, text, text, text, text, integer, text, boolean, date, date, integer, text,
  text [], int4multirange, text [], date
) to authenticated, service_role;
grant execute on function ci_private.als_score(integer, integer, integer, integer, integer, integer [])
to authenticated, service_role;
grant execute on function ci_private.als_tier(integer) to authenticated, service_role;
grant execute on function ci_private.als_role_points(date, date) to authenticated, service_role;
grant execute on function ci_private.als_funding_points(date, date) to authenticated, service_role;
grant execute on function ci_private.als_parts_of(
  integer, integer, text, boolean, text, boolean, text, text, text, integer, text, boolean, date, date, integer, text,
  text [], int4multirange, text [], date
) to authenticated, service_role;
grant execute on function ci_private.als_snapshot(ci_private.als_parts) to authenticated, service_role;
grant execute on function ci_private.als_today() to authenticated, service_role;
