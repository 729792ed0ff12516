-- The content of a client's pending touches without joins between its steps
-- (issue 15: the first refresh after a bulk import must not depend on the
-- planner's luck).
--
-- The released ci_private.pending_content (content_off_write_path migration)
-- derived each distinct input once and read each distinct snapshot once, then
-- joined those results back to the touches on the input text and on the
-- snapshot (jsonb). Its touches are found through the partial index of
-- pending touches, which the statistics see as empty whenever they were
-- gathered between two refreshes: every count was estimated at one row, both
-- join-backs were planned as nested loops over materialised CTEs, and the
-- first fill of an import was quadratic (21,000 imported leads, 98,660 touches
-- with rendered snapshots: stopped after 14 minutes, jsonb comparisons of
-- every touch against every snapshot).
--
-- Now no step is joined to another: the touches are numbered within each
-- distinct input (and then each distinct snapshot) by a window, the work is
-- done on the first touch of each (as a column of its own sub-query: a window
-- function's argument is evaluated again for each row it is read for), and a
-- second window over the same partition and order hands the result to the
-- others; a sort of the pending touches, whatever the estimates. Partitions
-- are keyed by a 64-bit hash first, so the sort compares the (long) jsonb only
-- for equal hashes. And each pending touch's activity and lead are probed by
-- key: the released joins became a scan of every client's activities when the
-- statistics guessed many pending rows (0.1 s here with nothing pending;
-- seconds on a host's table). Same rows and values as the released function
-- (tests/test_pending_content.py compares the two).
create or replace function ci_private.pending_content(p_client_id uuid)
returns table (
  lead_id uuid, touch_no integer, touch_id uuid, digest uuid, features ci_private.content_features, label_text text
)
language sql stable
set search_path = ''
set work_mem = '256MB'
set jit = off
as $$
  with src as materialized (
    select
      t.lead_id, t.touch_no, t.touch_id, t.channel, a.content_snapshot,
      case when a.content_snapshot is null then ci_private.derived_snapshot_input(
        a.subject, a.content_preview, a.metadata,
        l.company, l.first_name, l.last_name, l.title, l.organization_industry
      ) end as input,
      l.company, l.first_name, l.last_name, l.title, l.organization_industry as industry
    from ci_private.lead_touches as t
    -- Each pending touch's activity and lead probed by key (offset 0 keeps the
    -- probes): work in proportion to what is pending, never a scan of every
    -- activity because the statistics guessed many pending rows.
    cross join lateral (
      select a.content_snapshot, a.subject, a.content_preview, a.metadata
      from public.activities as a
      where a.id = t.touch_id
      offset 0
    ) as a
    left join lateral (
      select l.company, l.first_name, l.last_name, l.title, l.organization_industry
      from public.leads as l
      where l.id = t.lead_id
      offset 0
    ) as l on true
    where t.client_id = p_client_id
      and t.content_key is null
  ),

  -- Each distinct derivation input derived once, on its first touch.
  input_ranked as (
    select
      s.*,
      pg_catalog.jsonb_hash_extended(s.input, 0) as input_hash,
      pg_catalog.row_number() over (
        partition by pg_catalog.jsonb_hash_extended(s.input, 0), s.input order by s.touch_id
      ) as input_no
    from src as s
  ),

  derived_once as (
    select
      r.*,
      case when r.input is not null and r.input_no = 1
        then ci_private.derived_snapshot_of_input(p_client_id, r.input) end as derived
    from input_ranked as r
    -- A plain column below the next window: first_value evaluates its
    -- argument again for every row of the partition.
    offset 0
  ),

  snapshots as materialized (
    select
      d.lead_id, d.touch_no, d.touch_id, d.channel,
      d.company, d.first_name, d.last_name, d.title, d.industry,
      coalesce(
        d.content_snapshot,
        pg_catalog.first_value(d.derived) over (partition by d.input_hash, d.input order by d.touch_id)
      ) as snapshot
    from derived_once as d
  ),

  -- Each distinct snapshot read once, on its first touch.
  snapshot_ranked as (
    select
      s.*,
      pg_catalog.jsonb_hash_extended(s.snapshot, 0) as snapshot_hash,
      pg_catalog.row_number() over (
        partition by pg_catalog.jsonb_hash_extended(s.snapshot, 0), s.snapshot order by s.touch_id
      ) as snapshot_no
    from snapshots as s
  ),

  features_once as (
    select
      r.*,
      case when r.snapshot is not null and r.snapshot_no = 1
        then ci_private.content_features_of(r.snapshot) end as features_first
    from snapshot_ranked as r
    offset 0
  ),

  features as (
    select
      f.*,
      pg_catalog.first_value(f.features_first) over (
        partition by f.snapshot_hash, f.snapshot order by f.touch_id
      ) as features
    from features_once as f
  )

  select
    f.lead_id, f.touch_no, f.touch_id,
    case when k.features is distinct from null then ci_private.content_digest(k.features, k.label_text) end,
    k.features,
    k.label_text
  from features as f
  cross join lateral (
    select
      ci_private.keyed_features(f.features, f.channel) as features,
      ci_private.templatize(
        ci_private.needed_label_text(f.features, f.snapshot), f.company, f.first_name, f.last_name, f.title, f.industry
      ) as label_text
  ) as k
$$;
