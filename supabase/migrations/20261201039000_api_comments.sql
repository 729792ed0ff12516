-- The API reference in the catalog (contract section 6): COMMENT ON FUNCTION for
-- every public function, so that \df+, Supabase Studio and PostgREST's OpenAPI
-- show the shape, units, who may call and the errors. docs/api.md has the same
-- with example calls and results. Errors (SQLSTATE): 42501 insufficient_privilege
-- for a caller without access, P0002 no_data_found for an unknown client or lead
-- (service_role), 22023 invalid_parameter_value for a bad argument, 22P02 for text
-- that is not a uuid. get_agent_context and explain_lead_score are commented in
-- their own migrations.

comment on function public.get_conversion_patterns(uuid) is
'The stored patterns of a client: {who, what, when, how}, each the pattern JSON (spec 3.2 keys plus the '
'layer''s: smoothed_rate, ci_low, ci_high, lift, significance per segment; rates are fractions 0..1) with '
'sample_size (leads with an outcome), confidence (0..1), computed_at, valid_until and stale (past valid_until); '
'null for a type never computed. Members read; others 42501; unknown client (service_role) P0002.';

comment on function public.get_pattern_history(uuid, text, integer) is
'History of a client''s computed patterns, newest first: a JSON array of {id, pattern_type, patterns, '
'sample_size, confidence, computed_at}. p_pattern_type: who, what, when, how or null for all (else 22023); '
'p_limit 1..1000, default 52 (else 22023). Members read; others 42501.';

comment on function public.detect_who_patterns(uuid) is
'Compute the WHO pattern now (titles, industries, size bands, timing signals as of the first outbound touch, '
'and the ALS weight-learning decision in weight_learning); writes nothing. Rates per lead with an outcome. '
'Members read; others 42501.';

comment on function public.detect_what_patterns(uuid) is
'Compute the WHAT pattern now (subject patterns, pain points, CTAs, angles, lengths, personalisation); writes '
'nothing. Rates per touch sent (P(the touch is the converting touch)). Members read; others 42501.';

comment on function public.detect_when_patterns(uuid) is
'Compute the WHEN pattern now (local days and hours, converting-touch distribution, per-position hazard, '
'gaps, time to booking); writes nothing. Local time: the lead''s zone, else the campaign''s, else the client''s, '
'else UTC. Members read; others 42501.';

comment on function public.detect_how_patterns(uuid) is
'Compute the HOW pattern now (channel sequences with per-step hazards, first channel, multi-channel lift, '
'channel by tier); writes nothing. Members read; others 42501.';

comment on function public.refresh_conversion_patterns(uuid) is
'Compute and store all four patterns of a client (and history), apply learned ALS weights when the fit''s '
'checks pass, notify conversion_patterns_refreshed ({client_id, computed_at}); returns {client_id, status, '
'computed_at, weights {applied, ...}, who, what, when, how: {sample_size, confidence, warnings}}. Owners, '
'admins, service_role; others 42501.';

comment on function public.refresh_all_conversion_patterns() is
'Refresh every active client with enough outcomes, each on its own (one failure never stops the others); '
'returns {ok, skipped, failed, finished_at, clients: [{client_id, status, reason}]}. service_role and the '
'scheduler only: anon and authenticated get 42501.';

comment on function public.score_lead(uuid) is
'Rescore one lead now with the weights in force; returns its new score 0..100 (null for a soft-deleted lead). '
'Owners, admins, service_role; others (and unknown leads for them) 42501; unknown lead for service_role P0002.';

comment on function public.rescore_client_leads(uuid) is
'Rescore every non-deleted lead of a client with the weights in force; returns the number of leads rescored. '
'Owners, admins, service_role; others 42501.';

comment on function public.recommended_channel_allocation(uuid, text) is
'Channel shares for a tier (hot, warm, cool, cold, dead; else 22023): {tier, source (pattern|campaign|equal|'
'policy), allocation {channel: integer percent, summing to 100}, basis {channel: rate or share used}}, from '
'the fresh HOW pattern''s smoothed rates by tier, else the latest campaign''s allocation, else equal shares. '
'Members read; others 42501.';

comment on function public.apply_learned_weights(uuid, jsonb, jsonb) is
'Apply ALS weights fitted outside the database (the sidecar''s ci fit-weights): p_weights {data_quality, '
'authority, company_fit, timing}, each 0.05..0.50, summing to 0.85 (else 22023); p_metrics the decision, '
'recorded (applied=false in it: nothing applied). Stores them at 4 decimals and rescores the client''s leads; '
'returns {applied, weights, previous_weights, rescored, applied_at}. Owners, admins, service_role; others 42501.';

do $comments$
begin
  if pg_catalog.to_regprocedure('public.reconcile_conversions(uuid)') is not null then
    execute $c$comment on function public.reconcile_conversions(uuid) is
'Re-derive a client''s conversions and converting-touch marks from its history; returns what it corrected. '
'service_role only: anon and authenticated get 42501.'$c$;
  end if;
end
$comments$;
