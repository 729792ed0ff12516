-- The outbound touches of a client in (lead, send time) order, with what the
-- per-touch relation and the first-touch lookup read (channel, the booking
-- mark) in the index itself. ci_private.prepare_touches numbers each lead's
-- touches straight from it (an index-only scan in the window's order: no sort,
-- no snapshot read) and the WHO detector finds each lead's first outbound touch
-- from it. Partial: only outbound touches (ci_private.is_outbound_action, the
-- rule's one definition), a fraction of a client's activities.
-- Index-only scans need the visibility map that (auto)vacuum keeps; until then
-- they also read the table, which is slower but gives the same rows.
create index if not exists activities_ci_outbound_touch_idx
on public.activities (client_id, lead_id, created_at, id) include (channel, led_to_booking)
where ci_private.is_outbound_action(action);
