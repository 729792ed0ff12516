-- The kept rows' fingerprint hash, inlined into the query that sums it
-- (issue 15: the refresh's comparison of kept rows with the activities).
--
-- The released ci_private.touch_hash (lead_touches_read_time migration) could
-- not be inlined: it had SET search_path (a function with a SET clause is
-- called through the function manager, setting and restoring the parameter on
-- every call), and its body read extract(epoch from timestamptz), which is
-- only STABLE. Four calls a touch made the comparison the refresh's largest
-- step: 0.80-0.86 s of a 21,000-lead client's 3 s (98,660 touches, nothing to
-- change); inlined, the same comparison takes 0.12-0.21 s.
--
-- The time: the released hash folded its 64-bit microseconds into 32 bits
-- (hashint8extended), so two sends 71 min 34.967297 s apart (and every pair
-- whose halves fold alike) hashed the same, and a send re-timed by such an
-- amount with the triggers off went unseen (found in review). Now the time is
-- read as seconds since 1970 in a double (date_part of the timestamp in UTC,
-- IMMUTABLE) and all its 64 bits hashed (hashfloat8extended), the channel as
-- the seed, the id over both. Distinct microseconds give distinct doubles for
-- times between 1715 and 2242 (beyond, times a few microseconds apart may
-- share one). The values differ from the released function's and need not
-- match them: nothing stores a hash, both sides of every comparison are
-- computed in the same statement. Every name in the body is schema-qualified,
-- so no search_path is needed.
create or replace function ci_private.touch_hash(p_id uuid, p_at timestamptz, p_channel integer)
returns bigint
language sql immutable parallel safe
as $$
  select pg_catalog.uuid_hash_extended(
    p_id,
    pg_catalog.hashfloat8extended(pg_catalog.date_part('epoch', pg_catalog.timezone('UTC', p_at)), p_channel::bigint)
  )
$$;

comment on function ci_private.touch_hash(uuid, timestamptz, integer) is
'One touch''s fingerprint term: a 64-bit hash of (activity id, created_at to the microsecond between 1715 '
'and 2242, channel code). '
'sync_lead_touches sums it per lead over the activities and over the kept rows; unequal sums mean the lead''s '
'kept rows are recomputed. Inlined into the calling query (no SET clause, IMMUTABLE body).';
