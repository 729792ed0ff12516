-- The content features of a touch, read from its content_snapshot once, when
-- the touch is written, into activities.content_features.
--
-- Why: the WHAT detector groups touches by what their snapshots say. Reading
-- every snapshot's JSON at every refresh cost half of a large client's refresh
-- (41 s of 82 s at 10M activities); a BEFORE INSERT / UPDATE OF content_snapshot
-- trigger reads it once instead, into a narrow value of type
-- ci_private.content_features: each field read as its type (junk never
-- raises), subject templates and labels already normalised, the reason a junk
-- snapshot is not used. The trigger is named to run after
-- activities_ci_derive_snapshot (triggers fire in name order), so a derived
-- snapshot gets its features too.
--
-- Labels that an engine's snapshot does not name (pain points, CTA, angle) are
-- read from the client's keyword dictionary at refresh time, so that a change
-- of the dictionary applies at once; the features say so (needs_labels).
-- Derived snapshots carry the labels read when they were derived.
--
-- Rows stored before this migration (or written with the trigger disabled)
-- are not rewritten here: on a large host table that would hold writes for
-- many minutes. A small partial index finds them; each client's refresh fills
-- its own (ci_private.fill_content_features) before reading, and a row still
-- missing its features is read from its snapshot, so results never depend on
-- whether the fill has run.

-- A subject template with whitespace collapsed and placeholders written {name}.
create or replace function ci_private.normalize_template(p_text text)
returns text
language sql immutable parallel safe
as $$
  select nullif(btrim(regexp_replace(
    regexp_replace(p_text, '\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}', '{\1}', 'g'), '\s+', ' ', 'g'
  )), '')
$$;

-- A label (pain point, call to action, angle): lower case, whitespace
-- collapsed, no trailing punctuation.
create or replace function ci_private.normalize_label(p_text text)
returns text
language sql immutable parallel safe
as $$
  select nullif(rtrim(regexp_replace(lower(btrim(p_text)), '\s+', ' ', 'g'), '.!?,;: '), '')
$$;

-- The labels of a JSON array, normalised, each once, sorted (non-strings
-- ignored); null when the value is not an array.
create or replace function ci_private.label_array(p_labels jsonb)
returns text []
language sql immutable parallel safe
as $$
  select case when jsonb_typeof(p_labels) = 'array' then coalesce((
    select array_agg(distinct l.label order by l.label)
    from jsonb_array_elements(p_labels) as e (value)
    cross join lateral (select ci_private.normalize_label(e.value #>> '{}') as label) as l
    where jsonb_typeof(e.value) = 'string' and l.label is not null
  ), '{}'::text []) end
$$;

-- Type-safe reads of one JSON value (null when it is of another type), so that
-- a junk snapshot is counted, never an error.
-- Whether a JSON value is absent, null or of the given type.
create or replace function ci_private.json_type_is(p_value jsonb, p_type text)
returns boolean
language sql immutable parallel safe
as $$
  select p_value is null or jsonb_typeof(p_value) in (p_type, 'null')
$$;

-- A JSON string's text.
create or replace function ci_private.json_text(p_value jsonb)
returns text
language sql immutable parallel safe
as $$
  select case when jsonb_typeof(p_value) = 'string' then p_value #>> '{}' end
$$;

-- A JSON boolean.
create or replace function ci_private.json_bool(p_value jsonb)
returns boolean
language sql immutable parallel safe
as $$
  select case when jsonb_typeof(p_value) = 'boolean' then (p_value)::boolean end
$$;

-- 'true' / 'false' as a boolean; anything else null (never an error).
create or replace function ci_private.text_bool(p_value text)
returns boolean
language sql immutable parallel safe
as $$
  select case p_value when 'true' then true when 'false' then false end
$$;

-- A JSON number as an integer, rounded and clamped to 0..1e9.
create or replace function ci_private.json_int(p_value jsonb)
returns integer
language sql immutable parallel safe
as $$
  select case when jsonb_typeof(p_value) = 'number' then least(greatest((p_value)::float8, 0), 1e9)::integer end
$$;

-- The text to read labels from when an engine's snapshot does not name them:
-- its subject and body, or null (no reading) when the snapshot names every
-- label, was derived (read when it was derived), has no text or too much.
-- ci_private.keyword_labels is strict, so null costs nothing.
create or replace function ci_private.label_text(
  p_subject jsonb, p_body jsonb, p_pain_points jsonb, p_pain_points_used jsonb, p_cta jsonb, p_cta_used jsonb,
  p_angle jsonb, p_derived jsonb
)
returns text
language sql immutable parallel safe
as $$
  select case when p_derived is distinct from 'true'::jsonb
    and (p_pain_points is null and p_pain_points_used is null or p_cta is null and p_cta_used is null or p_angle is null)
    and (jsonb_typeof(p_subject) = 'string' or jsonb_typeof(p_body) = 'string')
    and coalesce(pg_column_size(p_subject), 0) <= 1000 and coalesce(pg_column_size(p_body), 0) <= 100000
    then concat_ws(' ', ci_private.json_text(p_subject), ci_private.json_text(p_body))
  end
$$;

do $$
begin
  if pg_catalog.to_regtype('ci_private.content_features') is null then
    create type ci_private.content_features as (
      junk_reason text,         -- not_object, wrong_type, empty, oversized: the content is not used
      derived boolean,          -- derived from subject / content_preview / metadata
      has_text boolean,         -- a usable snapshot with a subject or a body
      subject text,             -- ci_private.normalize_template of the subject
      pain_points text [],      -- normalised labels; null when the snapshot names none
      cta text,                 -- normalised label
      angle text,               -- normalised label
      word_count integer,
      char_count integer,
      pers_company boolean,
      pers_news boolean,
      pers_mutual boolean,
      pers_industry boolean,
      pers_level integer,
      needs_labels boolean      -- a label is missing: read it from the keyword dictionary
    );
  end if;
end
$$;

alter table public.activities add column if not exists content_features ci_private.content_features;

-- The content features of a snapshot (see the header); null for no snapshot.
create or replace function ci_private.content_features_of(p_snapshot jsonb)
returns ci_private.content_features
language sql immutable parallel safe
as $$
  select case
    when p_snapshot is null then null
    when jsonb_typeof(p_snapshot) <> 'object' then
      row('not_object', false, false, null, null, null, null, null, null, null, null, null, null, null, false)
      ::ci_private.content_features
    else (
      select case
        when j.junk_reason is not null then
          row(j.junk_reason, coalesce(ci_private.json_bool(x.derived), false), false,
            null, null, null, null, null, null, null, null, null, null, null, false)::ci_private.content_features
        else row(
          null,
          coalesce(ci_private.json_bool(x.derived), false),
          coalesce(x.subject <> '""' and jsonb_typeof(x.subject) = 'string', false)
          or coalesce(x.body <> '""' and jsonb_typeof(x.body) = 'string', false),
          ci_private.normalize_template(ci_private.json_text(x.subject)),
          coalesce(ci_private.label_array(x.pain_points), ci_private.label_array(x.pain_points_used)),
          ci_private.normalize_label(coalesce(ci_private.json_text(x.cta), ci_private.json_text(x.cta_used))),
          ci_private.normalize_label(ci_private.json_text(x.angle)),
          coalesce(
            ci_private.json_int(x.word_count),
            -- Words of an engine's body that did not state them (spaces + 1); never of
            -- a derived preview, which may be cut short.
            case when x.derived is distinct from 'true'::jsonb and jsonb_typeof(x.body) = 'string'
              and pg_column_size(x.body) <= 100000 and x.body <> '""'
              then octet_length(btrim(x.body #>> '{}')) - octet_length(replace(btrim(x.body #>> '{}'), ' ', '')) + 1
            end
          ),
          coalesce(
            ci_private.json_int(x.char_count),
            case when x.derived is distinct from 'true'::jsonb and jsonb_typeof(x.body) = 'string'
              then length(x.body #>> '{}')
            end
          ),
          coalesce(ci_private.text_bool(x.personalization ->> 'company_mention'), ci_private.json_bool(x.has_company_mention)),
          coalesce(ci_private.text_bool(x.personalization ->> 'recent_news'), ci_private.json_bool(x.has_recent_news)),
          coalesce(
            ci_private.text_bool(x.personalization ->> 'mutual_connection'), ci_private.json_bool(x.has_mutual_connection)
          ),
          coalesce(
            ci_private.text_bool(x.personalization ->> 'industry_specific'), ci_private.json_bool(x.has_industry_specific)
          ),
          ci_private.json_int(x.personalization_level),
          ci_private.label_text(x.subject, x.body, x.pain_points, x.pain_points_used, x.cta, x.cta_used, x.angle, x.derived)
          is not null
        )::ci_private.content_features
      end
      from jsonb_to_record(p_snapshot) as x (
        subject jsonb, body jsonb, pain_points jsonb, pain_points_used jsonb, cta jsonb, cta_used jsonb,
        angle jsonb, word_count jsonb, char_count jsonb, personalization jsonb, personalization_level jsonb,
        has_company_mention jsonb, has_recent_news jsonb, has_mutual_connection jsonb, has_industry_specific jsonb,
        derived jsonb
      )
      cross join lateral (
        select case
          when not (
            ci_private.json_type_is(x.subject, 'string') and ci_private.json_type_is(x.body, 'string')
            and ci_private.json_type_is(x.cta, 'string') and ci_private.json_type_is(x.cta_used, 'string')
            and ci_private.json_type_is(x.angle, 'string')
            and ci_private.json_type_is(x.pain_points, 'array') and ci_private.json_type_is(x.pain_points_used, 'array')
            and ci_private.json_type_is(x.word_count, 'number') and ci_private.json_type_is(x.char_count, 'number')
            and ci_private.json_type_is(x.personalization_level, 'number')
            and ci_private.json_type_is(x.personalization, 'object') and ci_private.json_type_is(x.derived, 'boolean')
            and coalesce(x.personalization ->> 'company_mention', 'true') in ('true', 'false')
            and coalesce(x.personalization ->> 'recent_news', 'true') in ('true', 'false')
            and coalesce(x.personalization ->> 'mutual_connection', 'true') in ('true', 'false')
            and coalesce(x.personalization ->> 'industry_specific', 'true') in ('true', 'false')
            and ci_private.json_type_is(x.has_company_mention, 'boolean')
            and ci_private.json_type_is(x.has_recent_news, 'boolean')
            and ci_private.json_type_is(x.has_mutual_connection, 'boolean')
            and ci_private.json_type_is(x.has_industry_specific, 'boolean')
          ) then 'wrong_type'
          when octet_length(ci_private.json_text(x.subject)) > 998 or pg_column_size(x.body) > 100000 then 'oversized'
          when (x.subject is not null or x.body is not null)
            and coalesce(x.subject, '""') = '""' and coalesce(x.body, '""') = '""' then 'empty'
        end as junk_reason
      ) as j
    )
  end
$$;

-- The text an engine's snapshot that names no labels is read with (see
-- ci_private.label_text); null when there is nothing to read.
create or replace function ci_private.snapshot_label_text(p_snapshot jsonb)
returns text
language sql immutable parallel safe
as $$
  select case when jsonb_typeof(p_snapshot) = 'object' then ci_private.label_text(
    p_snapshot -> 'subject', p_snapshot -> 'body', p_snapshot -> 'pain_points', p_snapshot -> 'pain_points_used',
    p_snapshot -> 'cta', p_snapshot -> 'cta_used', p_snapshot -> 'angle', p_snapshot -> 'derived'
  ) end
$$;

-- Read a touch's content features from its snapshot as it is written.
-- security definer: the host's writers, whatever their role, need no rights
-- on ci_private; it only ever sets NEW's own features.
create or replace function ci_private.activities_content_features()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  new.content_features := ci_private.content_features_of(new.content_snapshot);
  return new;
end
$$;

-- The touches whose features are still to be read (stored before this
-- migration or with the trigger disabled); empty once filled.
create index if not exists activities_ci_features_missing_idx
on public.activities (client_id) where content_snapshot is not null and content_features is null;

-- Read the missing content features of a client's stored touches; returns how
-- many were filled. Run by each refresh before it reads (cheap when none are
-- missing: the partial index is then empty).
-- security definer: a repair over one client's rows run by the refresh, which
-- has checked the caller's write access; it only ever sets content_features.
create or replace function ci_private.fill_content_features(p_client_id uuid)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_count integer;
begin
  update public.activities as a
  set content_features = ci_private.content_features_of(a.content_snapshot)
  where a.client_id = p_client_id
    and a.content_snapshot is not null
    and a.content_features is null;
  get diagnostics v_count = row_count;
  return v_count;
end
$$;

drop trigger if exists activities_ci_snapshot_features on public.activities;
create trigger activities_ci_snapshot_features
before insert or update of content_snapshot, content_features on public.activities
for each row
execute function ci_private.activities_content_features();

revoke execute on function ci_private.json_type_is(jsonb, text) from public, anon;
revoke execute on function ci_private.json_text(jsonb) from public, anon;
revoke execute on function ci_private.json_bool(jsonb) from public, anon;
revoke execute on function ci_private.text_bool(text) from public, anon;
revoke execute on function ci_private.json_int(jsonb) from public, anon;
revoke execute on function ci_private.label_text(jsonb, jsonb, jsonb, jsonb, jsonb, jsonb, jsonb, jsonb) from public, anon;
revoke execute on function ci_private.normalize_template(text) from public, anon;
revoke execute on function ci_private.normalize_label(text) from public, anon;
revoke execute on function ci_private.label_array(jsonb) from public, anon;
revoke execute on function ci_private.content_features_of(jsonb) from public, anon;
revoke execute on function ci_private.snapshot_label_text(jsonb) from public, anon;
revoke execute on function ci_private.activities_content_features() from public, anon, authenticated;
revoke execute on function ci_private.fill_content_features(uuid) from public, anon, authenticated;
grant execute on function ci_private.fill_content_features(uuid) to service_role;
grant execute on function ci_private.json_type_is(jsonb, text) to authenticated, service_role;
grant execute on function ci_private.json_text(jsonb) to authenticated, service_role;
grant execute on function ci_private.json_bool(jsonb) to authenticated, service_role;
grant execute on function ci_private.text_bool(text) to authenticated, service_role;
grant execute on function ci_private.json_int(jsonb) to authenticated, service_role;
grant execute on function ci_private.label_text(jsonb, jsonb, jsonb, jsonb, jsonb, jsonb, jsonb, jsonb)
to authenticated, service_role;
grant execute on function ci_private.normalize_template(text) to authenticated, service_role;
grant execute on function ci_private.normalize_label(text) to authenticated, service_role;
grant execute on function ci_private.label_array(jsonb) to authenticated, service_role;
grant execute on function ci_private.content_features_of(jsonb) to authenticated, service_role;
grant execute on function ci_private.snapshot_label_text(jsonb) to authenticated, service_role;
