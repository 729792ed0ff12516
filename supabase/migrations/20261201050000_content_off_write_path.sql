-- Content off the host's write path (issue 15, item 1).
--
-- Until now every insert into activities ran two BEFORE ROW triggers: one
-- derived a content snapshot from subject / content_preview / metadata when
-- the host wrote none (a keyword-dictionary read per row), the other read the
-- snapshot into activities.content_features and keyed it in
-- ci_private.content_keys (a lookup or an insert per row). One send cost 10-26x
-- a bare insert. Both triggers are gone: a host write pays only the per-lead
-- bookkeeping of ci_private.lead_touches, where a new touch arrives with no
-- content key (pending).
--
-- The content of pending touches is computed when a refresh needs it
-- (ci_private.fill_content_features, which each refresh already runs before it
-- reads), set-based and incrementally: only the client's touches still
-- pending, found through a small partial index, and each distinct input once
-- (a snapshot, or what a snapshot is derived from) before the features are
-- computed. The key lives in the layer's own table: ci_private.lead_touches
-- carries content_key (as it did), and activities is never rewritten: no
-- host-row update, no bloat or WAL on the host's table, no update trigger
-- fired. Key 0 means "computed: nothing to key" (no snapshot and nothing to
-- derive from); WHAT's join to content_keys drops it. The columns
-- activities.content_features and activities.content_key are no longer
-- written (rows written before keep their old values, which nothing reads;
-- dropping a column would rebuild the outbound-touch index that includes it).
--
-- Keyed so that rendered bodies of one template share the work and the key:
--   * derived snapshots are derived once per distinct input: the subject and
--     preview with the lead's own values put back as placeholders, the
--     metadata fields the derivation uses, and the two personalization flags
--     read from the rendered text. Labels are read from the templated text
--     (a lead's company name is no pain point), once per template;
--   * an engine's snapshot that names no labels keeps the text its labels
--     are read from templated the same way, so its rendered bodies share it;
--   * lengths are kept as the lower bound of the band WHAT ranks them in on
--     the touch's channel (ci_private.length_bucket): 87 and 93 words of one
--     email template are one value.
-- WHAT reads only the band, the labels and the flags, so its output is the
-- same; the key is a function of the touch's channel too.
--
-- Erasure: when the last touch of a key is deleted (or its content changes),
-- the key and its text go, in the statement's trigger, checked against the
-- layer's own rows.

drop trigger if exists activities_ci_derive_snapshot on public.activities;
drop trigger if exists activities_ci_snapshot_features on public.activities;
drop function if exists ci_private.activities_derive_snapshot();
drop function if exists ci_private.activities_content_features();
drop function if exists ci_private.content_key_of(uuid, ci_private.content_features, text);

-- New rows never get a key on activities: this index would hold every new
-- snapshot; the fill finds pending touches in lead_touches instead.
drop index if exists public.activities_ci_content_missing_idx;
-- Keys are looked up in the layer's rows now, never through activities.
drop index if exists public.activities_ci_content_key_idx;

-- The touches whose content is still to be computed; empty after a refresh.
-- One entry per new touch (a lead's re-numbered older touches carry keys).
create index if not exists lead_touches_content_pending_idx
on ci_private.lead_touches (client_id) where content_key is null;

-- What a derived snapshot is derived from, with the lead's own values put
-- back as placeholders: equal for the rendered bodies of one template (when
-- the flags read from the text agree). Null when there is nothing to derive
-- from. Only the metadata fields the derivation reads are kept.
create or replace function ci_private.derived_snapshot_input(
  p_subject text, p_preview text, p_metadata jsonb,
  p_company text, p_first_name text, p_last_name text, p_title text, p_industry text
)
returns jsonb
language plpgsql immutable parallel safe
set search_path = ''
as $$
declare
  v_meta jsonb := case when jsonb_typeof(p_metadata) = 'object' then p_metadata else '{}'::jsonb end;
  v_subject text := nullif(btrim(p_subject), '');
  v_body text := nullif(btrim(p_preview), '');
  v_pains jsonb;
  v_cta text;
  v_angle text;
  v_text text;
  v_perso jsonb := '{}'::jsonb;
  v_key text;
begin
  v_pains := case
    when jsonb_typeof(v_meta -> 'pain_points') = 'array' then v_meta -> 'pain_points'
    when jsonb_typeof(v_meta -> 'pain_points_used') = 'array' then v_meta -> 'pain_points_used'
    when jsonb_typeof(v_meta -> 'pain_point') = 'string' then jsonb_build_array(v_meta -> 'pain_point')
  end;
  v_cta := case
    when jsonb_typeof(v_meta -> 'cta') = 'string' then v_meta ->> 'cta'
    when jsonb_typeof(v_meta -> 'cta_used') = 'string' then v_meta ->> 'cta_used'
  end;
  v_angle := case when jsonb_typeof(v_meta -> 'angle') = 'string' then v_meta ->> 'angle' end;

  if v_subject is null and v_body is null and v_pains is null and v_cta is null and v_angle is null then
    return null;
  end if;

  -- Personalization: seen in the rendered text, or recorded in metadata.
  v_text := concat_ws(' ', v_subject, v_body);
  if v_text <> '' and length(btrim(coalesce(p_company, ''))) >= 2 then
    v_perso := v_perso || jsonb_build_object('company_mention', strpos(lower(v_text), lower(btrim(p_company))) > 0);
  end if;
  if v_text <> '' and length(btrim(coalesce(p_industry, ''))) >= 2 then
    v_perso := v_perso || jsonb_build_object(
      'industry_specific', strpos(lower(v_text), lower(btrim(p_industry))) > 0
    );
  end if;
  foreach v_key in array array['company_mention', 'recent_news', 'mutual_connection', 'industry_specific'] loop
    if jsonb_typeof(v_meta -> 'personalization' -> v_key) = 'boolean' then
      v_perso := v_perso || jsonb_build_object(v_key, v_meta -> 'personalization' -> v_key);
    elsif jsonb_typeof(v_meta -> ('has_' || v_key)) = 'boolean' then
      v_perso := v_perso || jsonb_build_object(v_key, v_meta -> ('has_' || v_key));
    end if;
  end loop;

  return jsonb_build_object(
    'subject', ci_private.templatize(v_subject, p_company, p_first_name, p_last_name, p_title, p_industry),
    'body', ci_private.templatize(v_body, p_company, p_first_name, p_last_name, p_title, p_industry),
    'pain_points', v_pains,
    'cta', v_cta,
    'angle', v_angle,
    'personalization', v_perso,
    'derived_from', to_jsonb(array_remove(array[
      case when v_subject is not null then 'subject' end,
      case when v_body is not null then 'content_preview' end,
      case when v_meta <> '{}'::jsonb then 'metadata' end
    ], null)),
    'word_count', case when jsonb_typeof(v_meta -> 'word_count') = 'number' then v_meta -> 'word_count' end,
    'char_count', case when jsonb_typeof(v_meta -> 'char_count') = 'number' then v_meta -> 'char_count' end
  );
end
$$;

-- The derived snapshot of an input (ci_private.derived_snapshot_input): labels
-- the metadata does not name are read from the templated text with the
-- client's keyword dictionary. Never raises (a warning and no snapshot).
create or replace function ci_private.derived_snapshot_of_input(p_client_id uuid, p_input jsonb)
returns jsonb
language plpgsql stable
set search_path = ''
as $$
declare
  v_pains jsonb := case when jsonb_typeof(p_input -> 'pain_points') = 'array' then p_input -> 'pain_points' end;
  v_cta text := p_input ->> 'cta';
  v_angle text := p_input ->> 'angle';
  v_text text;
  v_found jsonb;
begin
  if p_input is null then
    return null;
  end if;
  v_text := concat_ws(' ', p_input ->> 'subject', p_input ->> 'body');
  if v_text <> '' and (v_pains is null or v_cta is null or v_angle is null) then
    v_found := ci_private.keyword_labels(p_client_id, v_text);
    v_pains := coalesce(v_pains, v_found -> 'pain_points');
    v_cta := coalesce(v_cta, v_found ->> 'cta');
    v_angle := coalesce(v_angle, v_found ->> 'angle');
  end if;
  return jsonb_strip_nulls(jsonb_build_object(
    'subject', p_input -> 'subject',
    'body', p_input -> 'body',
    'pain_points', coalesce(v_pains, '[]'::jsonb),
    'cta', v_cta,
    'angle', v_angle,
    'personalization', p_input -> 'personalization',
    'derived', true,
    'derived_from', p_input -> 'derived_from',
    'word_count', p_input -> 'word_count',
    'char_count', p_input -> 'char_count'
  ));
exception when others then
  raise warning 'content snapshot not derived for client %: %', p_client_id, sqlerrm;
  return null;
end
$$;

-- The derived snapshot of one touch (as stored by derive_content_snapshots),
-- or null when there is nothing to derive from.
create or replace function ci_private.derive_content_snapshot(
  p_client_id uuid, p_lead_id uuid, p_subject text, p_preview text, p_metadata jsonb
)
returns jsonb
language plpgsql stable
set search_path = ''
as $$
declare
  v_lead record;
begin
  select l.company, l.first_name, l.last_name, l.title, l.organization_industry
  into v_lead
  from public.leads as l
  where l.id = p_lead_id;
  return ci_private.derived_snapshot_of_input(p_client_id, ci_private.derived_snapshot_input(
    p_subject, p_preview, p_metadata,
    v_lead.company, v_lead.first_name, v_lead.last_name, v_lead.title, v_lead.organization_industry
  ));
end
$$;

-- The features a content key holds for a touch on a channel: lengths kept as
-- the lower bound of the band WHAT ranks them in on that channel
-- (ci_private.length_bucket; length_bucket of the kept value is the band of
-- the original), so that rendered bodies of one template share a key.
create or replace function ci_private.keyed_features(p_features ci_private.content_features, p_channel smallint)
returns ci_private.content_features
language sql immutable parallel safe
as $$
  select case when p_features is distinct from null then row(
    (p_features).junk_reason, (p_features).derived, (p_features).has_text, (p_features).subject,
    (p_features).pain_points, (p_features).cta, (p_features).angle,
    case when p_channel in (1, 2)
      then lower(ci_private.length_bucket(p_channel, (p_features).word_count, (p_features).char_count)) end,
    case when p_channel = 3
      then lower(ci_private.length_bucket(p_channel, (p_features).word_count, (p_features).char_count)) end,
    (p_features).pers_company, (p_features).pers_news, (p_features).pers_mutual, (p_features).pers_industry,
    (p_features).pers_level, (p_features).needs_labels
  )::ci_private.content_features end
$$;

-- The content of a client's pending touches (content_key null in
-- lead_touches): each touch's digest, keyed features and label text (null
-- features: nothing to key). Set-based: the touches are read with their
-- activity and lead, each distinct derivation input is derived once, each
-- distinct snapshot read once. Writes nothing (the WHAT detector reads it
-- for touches a refresh has not filled yet).
create or replace function ci_private.pending_content(p_client_id uuid)
returns table (
  lead_id uuid, touch_no integer, touch_id uuid, digest uuid, features ci_private.content_features, label_text text
)
language sql stable
set search_path = ''
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
    inner join public.activities as a on a.id = t.touch_id
    left join public.leads as l on l.id = t.lead_id
    where t.client_id = p_client_id
      and t.content_key is null
  ),

  derived as materialized (
    select i.input, ci_private.derived_snapshot_of_input(p_client_id, i.input) as snapshot
    from (select distinct s.input from src as s where s.input is not null) as i
  ),

  snapshots as materialized (
    select s.*, coalesce(s.content_snapshot, d.snapshot) as snapshot
    from src as s
    left join derived as d on d.input = s.input
  ),

  features as materialized (
    select f.snapshot, ci_private.content_features_of(f.snapshot) as features
    from (select distinct s.snapshot from snapshots as s where s.snapshot is not null) as f
  )

  select
    s.lead_id, s.touch_no, s.touch_id,
    case when k.features is distinct from null then ci_private.content_digest(k.features, k.label_text) end,
    k.features,
    k.label_text
  from snapshots as s
  left join features as f on f.snapshot = s.snapshot
  cross join lateral (
    select
      ci_private.keyed_features(f.features, s.channel) as features,
      ci_private.templatize(
        ci_private.needed_label_text(f.features, s.snapshot), s.company, s.first_name, s.last_name, s.title, s.industry
      ) as label_text
  ) as k
$$;

-- Compute and key the content of a client's pending touches; returns how many
-- touches were filled. Run by each refresh before it reads; cheap when none
-- are pending (the partial index is then empty). One statement: the new keys
-- inserted, every pending touch given its key (0: nothing to key), each key
-- found by an index probe or in the map of the keys just added.
-- security definer: run by the refresh, which has checked the caller's write
-- access; it writes only the layer's own tables.
create or replace function ci_private.fill_content_features(p_client_id uuid)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_filled integer;
begin
  -- Touches sent since the kept rows were last read are pending too
  -- (lead_touches_read_time migration).
  perform ci_private.sync_lead_touches(p_client_id);
  with pending as materialized (
    select p.lead_id, p.touch_no, p.touch_id, p.digest, p.features, p.label_text
    from ci_private.pending_content(p_client_id) as p
  ),

  added as (
    insert into ci_private.content_keys (client_id, digest, features, label_text)
    select distinct on (p.digest) p_client_id, p.digest, p.features, p.label_text
    from pending as p
    where p.digest is not null
    order by p.digest
    on conflict (client_id, digest) do nothing
    returning key, digest
  ),

  -- The new keys as one map, read once (joins to the CTEs were planned as
  -- nested loops over misestimated row counts: quadratic on a first fill).
  new_keys as (
    select jsonb_object_agg(a.digest::text, a.key) as by_digest from added as a
  )

  update ci_private.lead_touches as t
  set content_key = coalesce(
    (select k.key from ci_private.content_keys as k where k.client_id = p_client_id and k.digest = p.digest),
    ((select n.by_digest from new_keys as n) ->> p.digest::text)::integer,
    0
  )
  from pending as p
  where t.client_id = p_client_id
    and t.lead_id = p.lead_id
    and t.touch_no = p.touch_no
    and t.touch_id = p.touch_id
    and t.content_key is null;
  get diagnostics v_filled = row_count;
  return v_filled;
end
$$;

-- Forget the given keys of a client where no kept touch holds them any more
-- (erasure: the text of a deleted touch leaves the layer with it).
create or replace function ci_private.forget_content_keys(p_keys integer [])
returns void
language sql
set search_path = ''
as $$
  delete from ci_private.content_keys as k
  where k.key = any(p_keys)
    and not exists (
      select 1 from ci_private.lead_touches as t where t.client_id = k.client_id and t.content_key = k.key
    )
$$;

-- The keys the kept rows of the given touches hold now (before a statement's
-- trigger recomputes them).
create or replace function ci_private.kept_content_keys(p_client_ids uuid [], p_lead_ids uuid [], p_touch_ids uuid [])
returns integer []
language sql stable
set search_path = ''
as $$
  select array_agg(distinct t.content_key)
  from unnest(p_client_ids, p_lead_ids, p_touch_ids) as u (client_id, lead_id, touch_id)
  inner join ci_private.lead_touches as t
    on t.client_id = u.client_id and t.lead_id = u.lead_id and t.touch_id = u.touch_id
  where t.content_key > 0
$$;

revoke execute on function ci_private.derived_snapshot_input(text, text, jsonb, text, text, text, text, text)
from public, anon, authenticated;
revoke execute on function ci_private.derived_snapshot_of_input(uuid, jsonb) from public, anon, authenticated;
revoke execute on function ci_private.derive_content_snapshot(uuid, uuid, text, text, jsonb) from public, anon;
revoke execute on function ci_private.keyed_features(ci_private.content_features, smallint)
from public, anon, authenticated;
revoke execute on function ci_private.pending_content(uuid) from public, anon, authenticated;
revoke execute on function ci_private.fill_content_features(uuid) from public, anon, authenticated;
revoke execute on function ci_private.forget_content_keys(integer []) from public, anon, authenticated;
revoke execute on function ci_private.kept_content_keys(uuid [], uuid [], uuid []) from public, anon, authenticated;
grant execute on function ci_private.derive_content_snapshot(uuid, uuid, text, text, jsonb) to authenticated, service_role;
grant execute on function ci_private.fill_content_features(uuid) to service_role;
