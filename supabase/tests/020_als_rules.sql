-- The lead score's rules (contract section 4), case by case, on the pure
-- functions: title normalisation, each component, the weights, the score and
-- the tiers. The trigger and the API are in 021 and 022.
begin;
select plan(110);

-- Components of a lead given as named attributes (nulls where not given), as
-- of 2026-06-30, for a client whose ICP is Dental / US with sizes 11-50.
create function pg_temp.parts(
  p_title text default null,
  p_email text default null, p_email_verified boolean default null,
  p_phone text default null, p_phone_verified boolean default null,
  p_linkedin text default null, p_personal text default null,
  p_industry text default null, p_employees integer default null, p_country text default null,
  p_hiring boolean default null, p_funded date default null, p_started date default null,
  p_bounces integer default 0, p_status text default 'new',
  p_icp_sizes text [] default '{11-50}', p_icp_industries text [] default '{Dental}',
  p_icp_locations text [] default '{US}'
) returns ci_private.als_parts
language sql stable as $$
  select c from ci_private.als_components(
    p_email, p_email_verified, p_phone, p_phone_verified, p_linkedin, p_personal, p_title,
    p_industry, p_employees, p_country, p_hiring, p_funded, p_started, p_bounces, p_status,
    ci_private.text_keys(p_icp_industries), ci_private.icp_size_ranges(p_icp_sizes),
    ci_private.text_keys(p_icp_locations), date '2026-06-30'
  ) as c
$$;

create function pg_temp.authority(p_title text) returns integer
language sql stable as $$ select (pg_temp.parts(p_title => p_title)).authority $$;

-- Title normalisation.
select is(ci_private.normalize_title('VP of Marketing'), 'vp marketing', 'title: VP of Marketing');
select is(ci_private.normalize_title('Vice President, Marketing'), 'vp marketing', 'title: Vice President, Marketing');
select is(ci_private.normalize_title('  VICE   PRESIDENT -- of the Marketing '), 'vp marketing', 'title: case, spacing, fillers');
select is(ci_private.normalize_title('Chief Executive Officer'), 'ceo', 'title: Chief Executive Officer is ceo');
select is(ci_private.normalize_title('Chief Technology Officer'), 'cto', 'title: CTO spelled out');
select is(ci_private.normalize_title('Chief Financial Officer'), 'cfo', 'title: CFO spelled out');
select is(ci_private.normalize_title('Chief Marketing Officer'), 'cmo', 'title: CMO spelled out');
select is(ci_private.normalize_title('Chief Operating Officer'), 'coo', 'title: COO spelled out');
select is(ci_private.normalize_title('Sr. Mgr, Sales'), 'senior manager sales', 'title: Sr. and Mgr');
select is(ci_private.normalize_title('Dir. of Ops'), 'director ops', 'title: Dir.');
select is(ci_private.normalize_title('Co-Founder & CEO'), 'cofounder ceo', 'title: Co-Founder');
select is(ci_private.normalize_title('Geschäftsführer'), 'geschäftsführer', 'title: letters beyond ASCII kept');
select is(ci_private.normalize_title(null), null, 'title: null has no key');
select is(ci_private.normalize_title('  -- / '), null, 'title: punctuation only has no key');

-- Authority: the first keyword group that matches, whole words, any case.
select is(pg_temp.authority('Owner'), 25, 'authority: owner 25');
select is(pg_temp.authority('CEO'), 25, 'authority: ceo 25');
select is(pg_temp.authority('Chief Executive Officer'), 25, 'authority: chief executive officer is a ceo, 25');
select is(pg_temp.authority('founder'), 25, 'authority: founder 25');
select is(pg_temp.authority('Co-Founder'), 25, 'authority: co-founder 25');
select is(pg_temp.authority('Chief of Staff'), 22, 'authority: chief 22');
select is(pg_temp.authority('President'), 22, 'authority: president 22');
select is(pg_temp.authority('CTO'), 22, 'authority: cto is a chief, 22');
select is(pg_temp.authority('Vice President'), 18, 'authority: "Vice President" is a vp (18), not a president');
select is(pg_temp.authority('Vice-President of Sales'), 18, 'authority: hyphenated vice-president is a vp');
select is(pg_temp.authority('VP Marketing'), 18, 'authority: vp 18');
select is(pg_temp.authority('Director of Sales'), 15, 'authority: director 15');
select is(pg_temp.authority('Head of Growth'), 15, 'authority: head 15');
select is(pg_temp.authority('Senior Manager, Operations'), 10, 'authority: senior manager 10');
select is(pg_temp.authority('Sr. Manager'), 10, 'authority: Sr. Manager is a senior manager');
select is(pg_temp.authority('Marketing Manager'), 7, 'authority: manager 7');
select is(pg_temp.authority('Team Lead'), 7, 'authority: "Team Lead" is a lead, 7');
select is(pg_temp.authority('Team Leader'), 5, 'authority: leader is not the word lead');
select is(pg_temp.authority('Headhunter'), 5, 'authority: headhunter is not the word head');
select is(pg_temp.authority('Presidential Advisor'), 5, 'authority: presidential is not president');
select is(pg_temp.authority('Software Engineer'), 5, 'authority: any other title 5');
select is(pg_temp.authority(null), 0, 'authority: no title 0');
select is(pg_temp.authority(' .. '), 0, 'authority: a title without words counts as none');
select is(pg_temp.authority('Assistant to the CEO'), 25, 'authority: the first matching group wins (ceo)');

-- Data quality.
select is((pg_temp.parts(p_email => 'a@b.c', p_email_verified => true)).data_quality, 8, 'dq: verified email 8');
select is((pg_temp.parts(p_email => 'a@b.c', p_email_verified => false)).data_quality, 4, 'dq: unverified email 4');
select is((pg_temp.parts(p_email => 'a@b.c')).data_quality, 4, 'dq: email with unknown verification 4');
select is((pg_temp.parts(p_email => '  ', p_email_verified => true)).data_quality, 0, 'dq: a blank email counts as none');
select is((pg_temp.parts(p_phone => '+1', p_phone_verified => true)).data_quality, 6, 'dq: verified phone 6');
select is((pg_temp.parts(p_phone => '+1', p_phone_verified => false)).data_quality, 3, 'dq: unverified phone 3');
select is((pg_temp.parts(p_linkedin => 'https://li/x')).data_quality, 4, 'dq: LinkedIn URL 4');
select is((pg_temp.parts(p_personal => 'me@home')).data_quality, 2, 'dq: personal email 2');
select is(
  (pg_temp.parts(p_email => 'a', p_email_verified => true, p_phone => 'p', p_phone_verified => true,
    p_linkedin => 'l', p_personal => 'm')).data_quality,
  20, 'dq: everything 20 (the maximum)'
);

-- Company fit.
select is((pg_temp.parts(p_industry => ' dental ')).company_fit, 10, 'fit: ICP industry, any case and spacing, 10');
select is((pg_temp.parts(p_industry => 'Legal')).company_fit, 0, 'fit: industry outside the ICP 0');
select is((pg_temp.parts(p_country => 'us')).company_fit, 7, 'fit: ICP location 7');
select is((pg_temp.parts(p_employees => 30)).company_fit, 8, 'fit: inside the ICP size range 8');
select is((pg_temp.parts(p_employees => 8)).company_fit, 0, 'fit: outside the listed ICP sizes 0 (no default band)');
select is((pg_temp.parts(p_employees => 30, p_icp_sizes => null)).company_fit, 8, 'fit: no ICP sizes, 5-50 gives 8');
select is((pg_temp.parts(p_employees => 5, p_icp_sizes => '{}')).company_fit, 8, 'fit: empty ICP sizes, 5 gives 8');
select is((pg_temp.parts(p_employees => 51, p_icp_sizes => null)).company_fit, 5, 'fit: 51-200 gives 5');
select is((pg_temp.parts(p_employees => 200, p_icp_sizes => null)).company_fit, 5, 'fit: 200 gives 5');
select is((pg_temp.parts(p_employees => 4, p_icp_sizes => null)).company_fit, 3, 'fit: 1-4 gives 3');
select is((pg_temp.parts(p_employees => 201, p_icp_sizes => null)).company_fit, 0, 'fit: above 200, 0');
select is((pg_temp.parts(p_employees => -40, p_icp_sizes => null)).company_fit, 0, 'fit: negative count 0');
select is((pg_temp.parts(p_employees => 0)).company_fit, 0, 'fit: zero employees 0');
select is((pg_temp.parts(p_employees => 30, p_icp_sizes => '{lots}')).company_fit, 8,
  'fit: ICP sizes without a valid range count as none listed');
select is((pg_temp.parts(p_employees => 5000, p_icp_sizes => '{"1,000+"}')).company_fit, 8, 'fit: open range 1,000+');
select is(
  (pg_temp.parts(p_industry => 'Dental', p_employees => 20, p_country => 'US')).company_fit, 25, 'fit: all 25'
);
select is(
  (pg_temp.parts(p_industry => 'Dental', p_employees => 20, p_country => 'US', p_icp_industries => null,
    p_icp_locations => null)).company_fit,
  8, 'fit: null ICP lists match nothing'
);
select is(
  ci_private.icp_size_ranges('{11-50, " 51 - 200 ", 7, 201+, abc, 50-10}'),
  '{[7,8),[11,201),[201,)}'::int4multirange, 'ICP size ranges: a-b, spaces, a, a+; junk and reversed dropped'
);

-- Timing, as of 2026-06-30.
select is((pg_temp.parts(p_started => date '2026-02-01')).timing, 6, 'timing: in role under 6 months 6');
select is((pg_temp.parts(p_started => date '2025-12-30')).timing, 3, 'timing: exactly 6 months is under 12: 3');
select is((pg_temp.parts(p_started => date '2025-07-01')).timing, 3, 'timing: under 12 months 3');
select is((pg_temp.parts(p_started => date '2025-06-30')).timing, 0, 'timing: 12 months in role 0');
select is((pg_temp.parts(p_started => date '2026-08-01')).timing, 0, 'timing: a role not started yet 0');
select is((pg_temp.parts(p_hiring => true)).timing, 5, 'timing: hiring 5');
select is((pg_temp.parts(p_funded => date '2025-06-30')).timing, 4, 'timing: funded within 12 months (inclusive) 4');
select is((pg_temp.parts(p_funded => date '2024-07-01')).timing, 2, 'timing: funded within 24 months 2');
select is((pg_temp.parts(p_funded => date '2024-06-29')).timing, 0, 'timing: funded longer ago 0');
select is((pg_temp.parts(p_funded => date '2027-01-01')).timing, 0, 'timing: a future funding date 0');
select is(
  (pg_temp.parts(p_started => date '2026-05-01', p_hiring => true, p_funded => date '2026-01-01')).timing,
  15, 'timing: everything 15 (the maximum)'
);

-- Risk.
select is((pg_temp.parts(p_bounces => 2)).risk, 10, 'risk: bounced before 10');
select is((pg_temp.parts(p_status => 'bounced')).risk, 10, 'risk: status bounced 10');
select is((pg_temp.parts(p_bounces => -3)).risk, 0, 'risk: a negative bounce count is none');
select is((pg_temp.parts(p_status => 'unsubscribed')).risk, 15, 'risk: unsubscribed 15');
select is((pg_temp.parts(p_title => 'Marketing Assistant')).risk, 5, 'risk: assistant 5');
select is((pg_temp.parts(p_title => 'Summer Intern')).risk, 5, 'risk: intern 5');
select is((pg_temp.parts(p_title => 'Receptionist')).risk, 5, 'risk: receptionist 5');
select is((pg_temp.parts(p_title => 'Assistance Manager')).risk, 0, 'risk: assistance is not assistant');
select is((pg_temp.parts(p_title => 'Student', p_status => 'unsubscribed')).risk, 15, 'risk: at most 15');
select is((pg_temp.parts(p_status => null)).risk, 0, 'risk: a null status is no status');

-- Weights.
select ok(ci_private.als_valid_weights(ci_private.als_default_weights()), 'weights: the defaults are valid');
select ok(
  not ci_private.als_valid_weights('{"data_quality": 0.2, "authority": 0.25, "company_fit": 0.25}'),
  'weights: a missing key is invalid'
);
select ok(
  not ci_private.als_valid_weights('{"data_quality": 0.2, "authority": 0.25, "company_fit": 0.25, "timing": "0.15"}'),
  'weights: a string is invalid'
);
select ok(
  not ci_private.als_valid_weights('{"data_quality": 0.04, "authority": 0.31, "company_fit": 0.25, "timing": 0.25}'),
  'weights: a weight below 0.05 is invalid'
);
select ok(
  not ci_private.als_valid_weights('{"data_quality": 0.2, "authority": 0.25, "company_fit": 0.25, "timing": 0.16}'),
  'weights: a sum other than 0.85 is invalid'
);
select is(
  ci_private.als_quantize_weights('{"data_quality": 0.20004, "authority": 0.24996, "company_fit": 0.2500049, "timing": 0.1499951}'),
  '{"data_quality": 0.2000, "authority": 0.2500, "company_fit": 0.2500, "timing": 0.1500}'::jsonb,
  'weights: used at 4 decimals, still summing to 0.85'
);

select is(ci_private.als_weight_units(ci_private.als_default_weights()), '{2000,2500,2500,1500}'::integer [],
  'weights: the defaults in units of 0.0001');

-- Score: 100 x sum of (component / max) x weight + 15 x (1 - risk / 15), clipped, rounded.
select is(ci_private.als_score(20, 25, 25, 15, 0, '{2000,2500,2500,1500}'), 100, 'score: every maximum gives 100');
select is(ci_private.als_score(0, 0, 0, 0, 15, '{2000,2500,2500,1500}'), 0, 'score: nothing and full risk gives 0');
select is(ci_private.als_score(8, 18, 25, 5, 0, '{2000,2500,2500,1500}'), 71,
  'score: under the defaults, the sum of the components + 15 - risk');
select is(ci_private.als_score(20, 25, 25, 15, 0, '{5000,1000,1000,1500}'), 100, 'score: other weights, maximum 100');
select is(ci_private.als_score(12, 0, 0, 0, 0, '{2250,2500,2250,1500}'), 29,
  'score: 28.5 rounds half up to 29 (exact arithmetic)');
select is(ci_private.als_score(4, 0, 0, 0, 0, '{2250,2500,2250,1500}'), 20, 'score: 19.5 rounds to 20');
select is(ci_private.als_score(0, 0, 0, 0, 10, '{2250,2500,2250,1500}'), 5, 'score: the risk deduction');

-- Tiers at every boundary.
select is(ci_private.als_tier(100), 'hot', 'tier: 100 hot');
select is(ci_private.als_tier(85), 'hot', 'tier: 85 hot');
select is(ci_private.als_tier(84), 'warm', 'tier: 84 warm');
select is(ci_private.als_tier(60), 'warm', 'tier: 60 warm');
select is(ci_private.als_tier(59), 'cool', 'tier: 59 cool');
select is(ci_private.als_tier(35), 'cool', 'tier: 35 cool');
select is(ci_private.als_tier(34), 'cold', 'tier: 34 cold');
select is(ci_private.als_tier(20), 'cold', 'tier: 20 cold');
select is(ci_private.als_tier(19), 'dead', 'tier: 19 dead');
select is(ci_private.als_tier(0), 'dead', 'tier: 0 dead');

select * from finish();
rollback;
