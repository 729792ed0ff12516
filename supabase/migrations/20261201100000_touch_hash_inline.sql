-- The kept rows' fingerprint hash, inlined into the query that sums it
-- (issue 15: the refresh's comparison of kept rows with the activities).
--
-- The released ci_private.touch_hash (lead_touches_read_time migration) could
-- not be inlined: it had SET search_path (a function with a SET clause is
-- called through the function manager, setting and restoring the parameter on
-- every call), and its body read extract(epoch from timestamptz), which is
-- only STABLE. Four calls a touch made the comparison the refresh's largest
-- step: 0.80-0.86 s of a 21,000-lead client's 3 s (98,660 touches, nothing to
-- change); inlined, the same comparison takes 0.14 s.
--
-- Same inputs, same exactness: the time is hashed as its exact microseconds
-- (the timestamp's own value read in UTC, an IMMUTABLE conversion), the
-- channel as the seed, the id over both. The values differ from the released
-- function's, and need not match them: nothing stores a hash, both sides of
-- every comparison are computed in the same statement. Every name in the body
-- is schema-qualified, so no search_path is needed.
create or replace function ci_private.touch_hash(p_id uuid, p_at timestamptz, p_channel integer)
returns bigint
language sql immutable parallel safe
as $$
  select pg_catalog.uuid_hash_extended(
    p_id,
    pg_catalog.timestamp_hash_extended(pg_catalog.timezone('UTC', p_at), p_channel::bigint)
  )
$$;

comment on function ci_private.touch_hash(uuid, timestamptz, integer) is
'One touch''s fingerprint term: a 64-bit hash of (activity id, created_at to the microsecond, channel code). '
'sync_lead_touches sums it per lead over the activities and over the kept rows; unequal sums mean the lead''s '
'kept rows are recomputed. Inlined into the calling query (no SET clause, IMMUTABLE body).';
