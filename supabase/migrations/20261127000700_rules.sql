-- The contract's rules (section 3), each kept in exactly one place so that the
-- triggers, the backfill and the detectors cannot disagree. Immutable SQL
-- functions without a SET clause (a SET would stop the planner from inlining
-- them); they name only fully qualified objects, so the search path cannot
-- change what they do.

-- Outbound touch: the host writes `sent` with a channel; the seed spec wrote
-- `email_sent` and so on. Both count.
create or replace function ci_private.is_outbound_action(p_action text)
returns boolean
language sql immutable parallel safe
as $$
  select p_action in (
    'sent', 'email_sent', 'sms_sent', 'linkedin_sent', 'voice_completed', 'connection_sent', 'message_sent'
  )
$$;

-- Conversion activity: a booked meeting recorded as an activity.
create or replace function ci_private.is_conversion_action(p_action text)
returns boolean
language sql immutable parallel safe
as $$
  select p_action in ('meeting_booked', 'converted')
$$;

-- Failed lead: a terminal status without a booking. Other statuses, converted
-- aside, have no outcome yet (censored).
create or replace function ci_private.is_failed_status(p_status text)
returns boolean
language sql immutable parallel safe
as $$
  select p_status in ('unsubscribed', 'bounced', 'not_interested', 'dead')
$$;

-- Outcome of a lead: 1 converted, 0 failed, null still open (censored).
create or replace function ci_private.lead_outcome(p_status text)
returns integer
language sql immutable parallel safe
as $$
  select case
    when p_status = 'converted' then 1
    when ci_private.is_failed_status(p_status) then 0
  end
$$;

grant execute on function ci_private.is_outbound_action(text) to authenticated, service_role;
grant execute on function ci_private.is_conversion_action(text) to authenticated, service_role;
grant execute on function ci_private.is_failed_status(text) to authenticated, service_role;
grant execute on function ci_private.lead_outcome(text) to authenticated, service_role;
