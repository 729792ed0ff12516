-- Two indexes on the pattern table that nothing uses, and two overlapping read
-- policies on the keyword table.
--
-- conversion_patterns holds one row per client and pattern type; every read
-- (the API, the allocator, the refresh's upsert) looks rows up by client_id and
-- pattern_type, which the unique constraint's index serves. The index on
-- pattern_type alone and the one on valid_until serve no query of the layer and
-- cost every refresh four index writes more.
drop index if exists public.idx_conversion_patterns_type;
drop index if exists public.idx_conversion_patterns_valid;

-- public.conversion_keywords had two permissive SELECT policies for
-- authenticated (the defaults, client_id is null; a member's clients), which
-- PostgreSQL ORs row by row. One policy now says both.
drop policy if exists conversion_keywords_default_read on public.conversion_keywords;
drop policy if exists conversion_keywords_member_read on public.conversion_keywords;
drop policy if exists conversion_keywords_read on public.conversion_keywords;
create policy conversion_keywords_read on public.conversion_keywords
for select to authenticated
using (client_id is null or client_id in (select ci_private.member_client_ids()));
