-- public.explain_lead_score (contract section 6): why a lead's score is what it
-- is. Each of the five components with the rule pieces that gave its points
-- (from the same rule functions the scorer uses: ci_private.als_components,
-- als_authority_points, als_junior_points, als_role_points, als_funding_points),
-- the weight in force, its contribution to the score, and the WHO segments the
-- lead falls in (its title, industry, size band and timing signals in the
-- client's stored WHO pattern) with their rates and lifts.

-- The rule pieces of one lead's components as of a date, as a JSON object
-- {component: [{rule, points}]}. Pieces are listed before each component's cap;
-- ci_private.explain_als_components caps and checks them against the scorer.
create or replace function ci_private.als_rule_pieces(
  p_lead public.leads,
  p_industries text [],
  p_sizes int4multirange,
  p_locations text [],
  p_as_of date
)
returns jsonb
language sql stable
set search_path = ''
as $$
  with t as (
    select ' ' || ci_private.normalize_title(p_lead.title) || ' ' as padded,
      ci_private.normalize_title(p_lead.title) as title_key
  ),
  pieces as (
    select * from (values
      ('data_quality', 'verified email', case when nullif(btrim(p_lead.email), '') is not null
        and p_lead.email_verified then 8 else 0 end),
      ('data_quality', 'unverified email', case when nullif(btrim(p_lead.email), '') is not null
        and not coalesce(p_lead.email_verified, false) then 4 else 0 end),
      ('data_quality', 'verified phone', case when nullif(btrim(p_lead.phone), '') is not null
        and p_lead.phone_verified then 6 else 0 end),
      ('data_quality', 'unverified phone', case when nullif(btrim(p_lead.phone), '') is not null
        and not coalesce(p_lead.phone_verified, false) then 3 else 0 end),
      ('data_quality', 'LinkedIn URL', case when nullif(btrim(p_lead.linkedin_url), '') is not null then 4 else 0 end),
      ('data_quality', 'personal email', case when nullif(btrim(p_lead.personal_email), '') is not null then 2 else 0 end),
      ('company_fit', 'industry ' || coalesce(p_lead.organization_industry, '') || ' in the ICP',
        case when ci_private.text_key(p_lead.organization_industry) = any(p_industries) then 10 else 0 end),
      ('company_fit', case
        when p_sizes is not null then 'employees ' || p_lead.organization_employee_count || ' in the ICP sizes'
        when p_lead.organization_employee_count between 5 and 50 then 'employees 5-50'
        when p_lead.organization_employee_count between 51 and 200 then 'employees 51-200'
        else 'employees 1-4' end,
        case
          when coalesce(p_lead.organization_employee_count, 0) <= 0 then 0
          when p_sizes is not null then case when p_sizes @> p_lead.organization_employee_count then 8 else 0 end
          when p_lead.organization_employee_count between 5 and 50 then 8
          when p_lead.organization_employee_count between 51 and 200 then 5
          when p_lead.organization_employee_count between 1 and 4 then 3
          else 0
        end),
      ('company_fit', 'country ' || coalesce(p_lead.organization_country, '') || ' in the ICP locations',
        case when ci_private.text_key(p_lead.organization_country) = any(p_locations) then 7 else 0 end),
      ('timing', case ci_private.als_role_points(p_lead.employment_start_date, p_as_of)
        when 6 then 'in the role under 6 months' else 'in the role under 12 months' end,
        ci_private.als_role_points(p_lead.employment_start_date, p_as_of)),
      ('timing', 'company hiring', case when p_lead.organization_is_hiring then 5 else 0 end),
      ('timing', case ci_private.als_funding_points(p_lead.organization_latest_funding_date, p_as_of)
        when 4 then 'funded within 12 months' else 'funded within 24 months' end,
        ci_private.als_funding_points(p_lead.organization_latest_funding_date, p_as_of)),
      ('risk', 'unsubscribed', case when p_lead.status::text = 'unsubscribed' then 15 else 0 end),
      ('risk', 'bounced before', case when coalesce(p_lead.bounce_count, 0) > 0
        or p_lead.status::text = 'bounced' then 10 else 0 end),
      ('risk', 'junior title', ci_private.als_junior_points((select t.padded from t)))
    ) as v (component, rule, points)
    union all
    select 'authority',
      case ci_private.als_authority_points(t.padded)
        when 25 then 'title ' || t.title_key || ': owner, ceo or founder'
        when 22 then 'title ' || t.title_key || ': chief, president or c-level'
        when 18 then 'title ' || t.title_key || ': vp'
        when 15 then 'title ' || t.title_key || ': director or head'
        when 10 then 'title ' || t.title_key || ': senior manager'
        when 7 then 'title ' || t.title_key || ': manager or lead'
        when 5 then 'title ' || t.title_key || ': other title'
        else 'no title'
      end,
      ci_private.als_authority_points(t.padded)
    from t
  )
  select jsonb_object_agg(g.component, g.items)
  from (
    select p.component, coalesce(
      jsonb_agg(jsonb_build_object('rule', p.rule, 'points', p.points) order by p.points desc, p.rule)
      filter (where p.points > 0), '[]'::jsonb
    ) as items
    from pieces as p
    group by p.component
  ) as g
$$;

-- The WHO segments a lead falls in, from a stored WHO pattern: its title,
-- industry and size band rows, and the timing-signal rows of its flags, each
-- with the pattern's figures (rate, smoothed rate, interval, lift,
-- significance, sample; any adjusted figures the pattern carries too).
create or replace function ci_private.lead_who_segments(p_lead public.leads, p_who jsonb, p_as_of date)
returns jsonb
language sql stable
set search_path = ''
as $$
  select coalesce(jsonb_agg(s.seg order by s.ord), '[]'::jsonb)
  from (
    select 1 as ord, jsonb_build_object('dimension', 'title', 'value', e ->> 'title') || e as seg
    from jsonb_array_elements(coalesce(p_who -> 'title_rankings', '[]'::jsonb)) as x (e)
    where e ->> 'title' = ci_private.normalize_title(p_lead.title)
    union all
    select 2, jsonb_build_object('dimension', 'industry', 'value', e ->> 'industry') || e
    from jsonb_array_elements(coalesce(p_who -> 'industry_rankings', '[]'::jsonb)) as x (e)
    where coalesce(e ->> 'industry_key', ci_private.text_key(e ->> 'industry'))
      = ci_private.text_key(p_lead.organization_industry)
    union all
    select 3, jsonb_build_object('dimension', 'company_size', 'value', e ->> 'range') || e
    from jsonb_array_elements(coalesce(p_who #> '{size_analysis,distribution}', '[]'::jsonb)) as x (e)
    where (e ->> 'band')::integer = ci_private.who_size_band(p_lead.organization_employee_count)
    union all
    select 4, jsonb_build_object('dimension', e ->> 'signal', 'value', e -> 'flag') || e
    from jsonb_each(coalesce(p_who #> '{timing_signals,segments}', '{}'::jsonb)) as g (signal, rows)
    cross join lateral jsonb_array_elements(
      case when jsonb_typeof(g.rows) = 'array' then g.rows else '[]'::jsonb end
    ) as x (e)
    where (e ->> 'flag')::boolean = case g.signal
      when 'new_role' then ci_private.als_role_points(p_lead.employment_start_date, p_as_of) = 6
      when 'hiring' then coalesce(p_lead.organization_is_hiring, false)
      when 'funded' then ci_private.als_funding_points(p_lead.organization_latest_funding_date, p_as_of) = 4
    end
  ) as s
$$;

-- Why a lead's score is what it is. Read access to the lead's client.
-- security definer: reads the lead and the client's stored WHO pattern after
-- the access check, whatever the host's policies on leads.
create or replace function public.explain_lead_score(p_lead_id uuid)
returns jsonb
language plpgsql stable
security definer
set search_path = ''
as $$
declare
  v_lead public.leads;
  v_ctx record;
  v_parts ci_private.als_parts;
  v_pieces jsonb;
  v_today date := ci_private.als_today();
  v_score integer;
  v_who public.conversion_patterns;
  v_components jsonb;
begin
  if p_lead_id is null then
    raise exception 'lead id is required' using errcode = 'null_value_not_allowed';
  end if;
  select l.* into v_lead from public.leads as l where l.id = p_lead_id;
  if not found then
    if ci_private.caller_role() in ('anon', 'authenticated') then
      raise exception 'not authorized for lead %', p_lead_id using errcode = 'insufficient_privilege';
    end if;
    raise exception 'unknown lead %', p_lead_id using errcode = 'no_data_found';
  end if;
  perform ci_private.assert_client_access(v_lead.client_id, false);

  select k.industries, k.sizes, k.locations, k.weights, k.weight_units,
    ci_private.als_valid_weights(c.als_learned_weights) as learned, c.als_weights_updated_at
  into v_ctx
  from public.clients as c
  cross join lateral ci_private.als_context(c) as k
  where c.id = v_lead.client_id;

  select p.* into v_parts
  from ci_private.als_components(
    v_lead.email, v_lead.email_verified, v_lead.phone, v_lead.phone_verified, v_lead.linkedin_url,
    v_lead.personal_email, v_lead.title, v_lead.organization_industry, v_lead.organization_employee_count,
    v_lead.organization_country, v_lead.organization_is_hiring, v_lead.organization_latest_funding_date,
    v_lead.employment_start_date, v_lead.bounce_count, v_lead.status::text,
    v_ctx.industries, v_ctx.sizes, v_ctx.locations, v_today
  ) as p;
  v_score := ci_private.als_score(
    v_parts.data_quality, v_parts.authority, v_parts.company_fit, v_parts.timing, v_parts.risk, v_ctx.weight_units
  );
  v_pieces := ci_private.als_rule_pieces(v_lead, v_ctx.industries, v_ctx.sizes, v_ctx.locations, v_today);

  select jsonb_agg(jsonb_build_object(
    'component', c.name,
    'points', c.points,
    'max', c.max,
    'rules', coalesce(v_pieces -> c.name, '[]'::jsonb),
    'capped', (
      select coalesce(sum((r ->> 'points')::integer), 0)
      from jsonb_array_elements(coalesce(v_pieces -> c.name, '[]'::jsonb)) as x (r)
    ) > c.points,
    'weight', c.weight,
    -- Points of the 0..100 score this component gives (risk: what it takes away).
    'contribution', case
      when c.name = 'risk' then round(-c.points::numeric, 2)
      else round(100 * c.points::numeric / c.max * c.weight, 2)
    end
  ) order by c.ord)
  into v_components
  from (values
    (1, 'data_quality', v_parts.data_quality, 20, (v_ctx.weights ->> 'data_quality')::numeric),
    (2, 'authority', v_parts.authority, 25, (v_ctx.weights ->> 'authority')::numeric),
    (3, 'company_fit', v_parts.company_fit, 25, (v_ctx.weights ->> 'company_fit')::numeric),
    (4, 'timing', v_parts.timing, 15, (v_ctx.weights ->> 'timing')::numeric),
    (5, 'risk', v_parts.risk, 15, 0.15)
  ) as c (ord, name, points, max, weight);

  select cp.* into v_who
  from public.conversion_patterns as cp
  where cp.client_id = v_lead.client_id and cp.pattern_type = 'who';

  return jsonb_build_object(
    'lead_id', v_lead.id,
    'client_id', v_lead.client_id,
    'score', v_score,
    'tier', ci_private.als_tier(v_score),
    'stored_score', v_lead.als_score,
    'stored_tier', v_lead.als_tier,
    'scored_at', v_lead.scored_at,
    'as_of', v_today,
    'weights', v_ctx.weights,
    'weights_source', case when v_ctx.learned then 'learned' else 'default' end,
    'weights_updated_at', v_ctx.als_weights_updated_at,
    'weights_used_by_stored_score', v_lead.als_weights_used,
    'formula', 'score = sum of 100 x points / max x weight over the four positive components '
      || '+ 15 - risk, clipped to 0..100 and rounded',
    'components', v_components,
    'who_segments', case when v_who.id is null then '[]'::jsonb
      else ci_private.lead_who_segments(v_lead, v_who.patterns, v_today) end,
    'who_pattern', case when v_who.id is null then null else jsonb_build_object(
      'computed_at', v_who.computed_at,
      'stale', v_who.valid_until < pg_catalog.now(),
      'baseline_rate', v_who.patterns -> 'baseline_rate',
      'sample_size', v_who.sample_size
    ) end
  );
end
$$;

revoke execute on function ci_private.als_rule_pieces(public.leads, text [], int4multirange, text [], date)
from public, anon;
grant execute on function ci_private.als_rule_pieces(public.leads, text [], int4multirange, text [], date)
to authenticated, service_role;
revoke execute on function ci_private.lead_who_segments(public.leads, jsonb, date) from public, anon;
grant execute on function ci_private.lead_who_segments(public.leads, jsonb, date) to authenticated, service_role;
revoke execute on function public.explain_lead_score(uuid) from public, anon, authenticated;
grant execute on function public.explain_lead_score(uuid) to authenticated, service_role;

comment on function public.explain_lead_score(uuid) is
'Why a lead''s score is what it is, as of today with the weights in force: {lead_id, client_id, score, tier, '
'stored_score, stored_tier, scored_at, as_of, weights, weights_source (learned|default), components: [{component, '
'points, max, rules: [{rule, points}], capped, weight, contribution (points of the 0..100 score; risk negative)}], '
'who_segments: [{dimension (title|industry|company_size|new_role|hiring|funded), value, conversion_rate, '
'smoothed_rate, ci_low, ci_high, lift, significance, sample, ...}], who_pattern {computed_at, stale, baseline_rate, '
'sample_size}}. Members read; anon, non-members and unknown leads get insufficient_privilege (42501); '
'service_role gets no_data_found (P0002) for an unknown lead.';
