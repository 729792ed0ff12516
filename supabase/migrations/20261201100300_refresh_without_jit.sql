-- The refresh and the reconciliation run without JIT compilation (issue 15:
-- the refresh's cost).
--
-- The detectors already set jit = off (prepare_touches, what/when/how_patterns,
-- detect_who_patterns); the steps before them did not. On a client of 21,000
-- leads their statements are estimated above jit_above_cost (100,000) and
-- jit_optimize_above_cost (500,000): the content fill, with nothing to fill,
-- took 1.4-1.7 s, all of it compiling expressions for rows that never came,
-- against 0.007 s without JIT. The setting on each entry point holds for
-- everything it calls; the steps that can be called alone carry it too.
alter function public.refresh_conversion_patterns(uuid) set jit = off;
alter function public.reconcile_conversions(uuid) set jit = off;
alter function ci_private.sync_lead_touches(uuid) set jit = off;
alter function ci_private.fill_content_features(uuid) set jit = off;
alter function ci_private.rebuild_lead_touches(uuid) set jit = off;
alter function ci_private.recompute_lead_touches(uuid [], uuid []) set jit = off;
