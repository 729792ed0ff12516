-- A small partial index of the bookings (actions that convert: meeting_booked,
-- converted), by client, lead and time. The reconciliation of every refresh
-- looks up each lead's first booking and whether a booking explains its
-- converted_at; through activities_ci_lead_created_idx each lookup read all of
-- the lead's activities and filtered them (21k leads: 0.36 s of a 0.62 s
-- statement); through this index a lead without a booking, most of them, is one
-- probe of an index holding only the bookings. The host's writes of other
-- activities pay the predicate only (an IN over two constants); a booking pays
-- one index entry. Created like the layer's other indexes (a migration runs in
-- a transaction: not CONCURRENTLY; on a large host table apply it in a quiet
-- window, or create it CONCURRENTLY by hand first: the IF NOT EXISTS skips it).
create index if not exists activities_ci_conversion_idx
on public.activities (client_id, lead_id, created_at)
where ci_private.is_conversion_action(action);
