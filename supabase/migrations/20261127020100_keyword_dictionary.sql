-- Keyword dictionaries of the WHAT detector, kept as data (seed spec 4.2).
-- When a touch's content snapshot does not name its pain points, call to action
-- or angle (the host's engines do not all write them, and derived snapshots
-- never do), they are read from its text with these keyword lists. Rows with
-- client_id null are the defaults (the seed's PAIN_POINT_KEYWORDS,
-- ANGLE_PATTERNS and CTA_PATTERNS); a client's own row for the same kind and
-- term replaces the default for that client, and an empty keyword list turns
-- the term off for it. Matching is by whole words after English stemming
-- ("scale" finds "scaling", "hire" finds "hiring"; "roi" does not find
-- "heroic"); a phrase matches its words in order; a keyword without letters or
-- digits ("$") matches as a plain substring.

-- Each keyword's text-search query (English stemming, words in order); null
-- for a keyword without letters or digits, which is matched as a substring.
create or replace function ci_private.keyword_queries(p_keywords text [])
returns tsquery []
language sql immutable parallel safe
as $$
  select array_agg(
    case when btrim(u.kw) ~ '[[:alnum:]]' then phraseto_tsquery('pg_catalog.english'::regconfig, lower(btrim(u.kw))) end
    order by u.ord
  )
  from unnest(p_keywords) with ordinality as u (kw, ord)
$$;

create table if not exists public.conversion_keywords (
  id bigint generated always as identity primary key,
  -- null: a default for every client.
  client_id uuid references public.clients (id) on delete cascade,
  kind text not null,
  term text not null,
  keywords text [] not null default '{}',
  -- Each keyword's text-search query, computed once (null for a symbol).
  queries tsquery [] generated always as (ci_private.keyword_queries(keywords)) stored,
  created_at timestamptz not null default pg_catalog.now(),
  updated_at timestamptz not null default pg_catalog.now(),
  constraint conversion_keywords_kind_check check (kind in ('pain_point', 'cta', 'angle')),
  constraint conversion_keywords_term_check check (term = lower(btrim(term)) and term <> ''),
  -- Its index (client_id first) also serves the policies' and lookups' client_id.
  constraint conversion_keywords_unique unique nulls not distinct (client_id, kind, term)
);

alter table public.conversion_keywords enable row level security;
revoke all on public.conversion_keywords from anon, authenticated;
grant select, insert, update, delete on public.conversion_keywords to authenticated;
grant all on public.conversion_keywords to service_role;

-- Everyone signed in reads the defaults; members read their clients' rows;
-- owners and admins manage their clients' rows. Defaults change by migration
-- or service_role only.
drop policy if exists conversion_keywords_default_read on public.conversion_keywords;
create policy conversion_keywords_default_read on public.conversion_keywords
for select to authenticated
using (client_id is null);

drop policy if exists conversion_keywords_member_read on public.conversion_keywords;
create policy conversion_keywords_member_read on public.conversion_keywords
for select to authenticated
using (client_id in (select ci_private.member_client_ids()));

drop policy if exists conversion_keywords_admin_insert on public.conversion_keywords;
create policy conversion_keywords_admin_insert on public.conversion_keywords
for insert to authenticated
with check (client_id in (select ci_private.admin_client_ids()));

drop policy if exists conversion_keywords_admin_update on public.conversion_keywords;
create policy conversion_keywords_admin_update on public.conversion_keywords
for update to authenticated
using (client_id in (select ci_private.admin_client_ids()))
with check (client_id in (select ci_private.admin_client_ids()));

drop policy if exists conversion_keywords_admin_delete on public.conversion_keywords;
create policy conversion_keywords_admin_delete on public.conversion_keywords
for delete to authenticated
using (client_id in (select ci_private.admin_client_ids()));

-- The seed's lists. Existing default rows are left as they are (an operator may
-- have tuned them).
insert into public.conversion_keywords (client_id, kind, term, keywords)
values
(null, 'pain_point', 'leads', array['leads', 'pipeline', 'prospects', 'opportunities', 'qualified']),
(null, 'pain_point', 'revenue', array['revenue', 'sales', 'growth', 'roi', 'profit', 'income']),
(null, 'pain_point', 'time', array['time', 'hours', 'manual', 'automate', 'efficiency', 'busy']),
(null, 'pain_point', 'scaling', array['scale', 'growth', 'capacity', 'bandwidth', 'hire', 'team']),
(null, 'pain_point', 'competition', array['competitors', 'market share', 'behind', 'catching up']),
(null, 'pain_point', 'cost', array['cost', 'expensive', 'budget', 'waste', 'spending', 'save']),
(null, 'pain_point', 'quality', array['quality', 'results', 'performance', 'outcomes', 'better']),
(null, 'angle', 'roi_focused', array['roi', 'return', 'revenue', 'profit', 'save', '$', 'percent']),
(null, 'angle', 'social_proof', array['clients', 'companies like', 'others in', 'case study', 'results']),
(null, 'angle', 'curiosity', array['noticed', 'wondering', 'quick question', 'curious', 'idea']),
(null, 'angle', 'fear_based', array['missing', 'losing', 'behind', 'risk', 'problem']),
(null, 'angle', 'value_add', array['free', 'complimentary', 'audit', 'analysis', 'assessment']),
(null, 'cta', 'open to a quick chat', array['open to a quick chat']),
(null, 'cta', 'worth 15 minutes', array['worth 15 minutes']),
(null, 'cta', 'free audit', array['free audit']),
(null, 'cta', 'quick call', array['quick call']),
(null, 'cta', 'interested in learning', array['interested in learning']),
(null, 'cta', 'schedule a call', array['schedule a call']),
(null, 'cta', 'book a time', array['book a time']),
(null, 'cta', 'happy to share', array['happy to share']),
(null, 'cta', 'let me know', array['let me know'])
on conflict (client_id, kind, term) do nothing;

-- The dictionary in force for a client, one row per term: the defaults that
-- the client has not overridden, plus the client's own rows.
create or replace function ci_private.client_keywords(p_client_id uuid)
returns table (kind text, term text, keywords text [], queries tsquery [])
language sql stable parallel safe
as $$
  select distinct on (k.kind, k.term) k.kind, k.term, k.keywords, k.queries
  from public.conversion_keywords as k
  where k.client_id is null or k.client_id = p_client_id
  order by k.kind, k.term, k.client_id nulls last
$$;

-- Labels found in a text with a client's dictionary: every pain point that
-- matches; the call to action with the longest matching phrase (the most
-- specific); the angle with the most matching keywords (ties: by name).
-- Reads the first 20,000 characters, without "words" of 100+ characters (no
-- keyword is one; they only slow the parser down). Strict: no text, no labels.
create or replace function ci_private.keyword_labels(p_client_id uuid, p_text text)
returns jsonb
language sql stable strict parallel safe
as $$
  with doc as materialized (
    select to_tsvector('pg_catalog.english'::regconfig, t.txt) as ts, lower(t.txt) as lowered
    from (select regexp_replace(left(coalesce(p_text, ''), 20000), '\S{100,}', ' ', 'g') as txt) as t
  ),
  hits as materialized (
    select e.kind, e.term, count(*) as matched, max(length(u.keyword)) as longest
    from ci_private.client_keywords(p_client_id) as e
    cross join doc as d
    cross join lateral unnest(e.keywords, e.queries) as u (keyword, query)
    where case
      when u.query is null then btrim(u.keyword) <> '' and strpos(d.lowered, lower(btrim(u.keyword))) > 0
      when numnode(u.query) = 0 then false
      else d.ts @@ u.query
    end
    group by e.kind, e.term
  )
  select jsonb_build_object(
    'pain_points', coalesce(
      (select jsonb_agg(h.term order by h.term) from hits as h where h.kind = 'pain_point'), '[]'::jsonb
    ),
    'cta', (select h.term from hits as h where h.kind = 'cta' order by h.longest desc, h.term limit 1),
    'angle', (select h.term from hits as h where h.kind = 'angle' order by h.matched desc, h.term limit 1)
  )
$$;

revoke execute on function ci_private.keyword_queries(text []) from public, anon;
revoke execute on function ci_private.client_keywords(uuid) from public, anon;
revoke execute on function ci_private.keyword_labels(uuid, text) from public, anon;
grant execute on function ci_private.keyword_queries(text []) to authenticated, service_role;
grant execute on function ci_private.client_keywords(uuid) to authenticated, service_role;
grant execute on function ci_private.keyword_labels(uuid, text) to authenticated, service_role;
