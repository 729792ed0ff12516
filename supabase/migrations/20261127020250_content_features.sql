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
-- Each distinct value (features, and the text to read missing labels from)
-- is stored once per client in ci_private.content_keys, and the touch keeps
-- its integer key in activities.content_key, which the outbound-touch index
-- carries: the WHAT detector groups a client's touches by key straight from
-- the per-touch relation (no read of the activities table at refresh time)
-- and unpacks each key's features once. (Grouping 5M touches by the features
-- read from the table cost 20 s of a 1M-lead refresh; by key, under 1 s.)
-- The key costs the write one primary-key lookup (and an insert for a value
-- the client has not sent before).
--
-- Rows stored before this migration (or written with the trigger disabled)
-- are not rewritten here: on a large host table that would hold writes for
-- many minutes. A small partial index finds them; each client's refresh fills
-- its own (ci_private.fill_content_features) before reading, and a row still
-- without its key is read from its snapshot, so results never depend on
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

-- A client's distinct content values: the features and the text missing
-- labels are read from (null when the snapshot names its labels), keyed.
create table if not exists ci_private.content_keys (
  key integer generated always as identity primary key,
  client_id uuid not null references public.clients (id) on delete cascade,
  digest uuid not null,
  features ci_private.content_features not null,
  label_text text,
  created_at timestamptz not null default pg_catalog.now(),
  unique (client_id, digest)
);
comment on table ci_private.content_keys is
'Distinct content features (and label text) of each client''s touches; activities.content_key points here.';
-- Tenant data read and written only by the layer's security definer functions.
alter table ci_private.content_keys enable row level security;
revoke all on ci_private.content_keys from public, anon, authenticated, service_role;

alter table public.activities add column if not exists content_key integer;
comment on column public.activities.content_key is
'Conversion Intelligence: key of the touch''s content features in ci_private.content_keys (set by trigger).';

-- The digest a content value is keyed by (its features and label text).
create or replace function ci_private.content_digest(p_features ci_private.content_features, p_label_text text)
returns uuid
language sql immutable parallel safe
as $$
  select md5(row(p_features, p_label_text)::text)::uuid
$$;

-- The label text a touch's content value keeps: its snapshot's text when a
-- label is to be read from the dictionary, else null.
create or replace function ci_private.needed_label_text(p_features ci_private.content_features, p_snapshot jsonb)
returns text
language sql immutable parallel safe
as $$
  select case when (p_features).needs_labels then ci_private.snapshot_label_text(p_snapshot) end
$$;

-- The key of a client's content value, stored now if it is new (null for no
-- features or no client). A concurrent writer of the same new value waits
-- for the first to commit, then reads its key. Called by the trigger (a
-- security definer function); no SET clause of its own, which would cost
-- every write several microseconds, and every name it uses is qualified.
create or replace function ci_private.content_key_of(
  p_client_id uuid, p_features ci_private.content_features, p_label_text text
)
returns integer
language plpgsql volatile
as $$
declare
  v_digest uuid;
  v_key integer;
begin
  if p_client_id is null or p_features is null then
    return null;
  end if;
  v_digest := ci_private.content_digest(p_features, p_label_text);
  select k.key into v_key from ci_private.content_keys as k where k.client_id = p_client_id and k.digest = v_digest;
  if found then
    return v_key;
  end if;
  insert into ci_private.content_keys (client_id, digest, features, label_text)
  values (p_client_id, v_digest, p_features, p_label_text)
  on conflict (client_id, digest) do nothing
  returning key into v_key;
  if v_key is null then
    select k.key into v_key from ci_private.content_keys as k where k.client_id = p_client_id and k.digest = v_digest;
  end if;
  return v_key;
end
$$;

-- Read a touch's content features from its snapshot as it is written, and key them.
-- security definer: the host's writers, whatever their role, need no rights
-- on ci_private; it only ever sets NEW's own features and key, and adds the
-- client's new content values.
create or replace function ci_private.activities_content_features()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  new.content_features := ci_private.content_features_of(new.content_snapshot);
  new.content_key := ci_private.content_key_of(
    new.client_id, new.content_features, ci_private.needed_label_text(new.content_features, new.content_snapshot)
  );
  return new;
end
$$;

-- The touches whose content is still to be keyed (stored before this
-- migration or with the trigger disabled); empty once filled.
drop index if exists public.activities_ci_features_missing_idx;
create index if not exists activities_ci_content_missing_idx
on public.activities (client_id) where content_snapshot is not null and content_key is null;

-- Non-outbound activities with a snapshot (counted by the WHAT detector as
-- skipped, never read): their own index keeps the count off the table.
create index if not exists activities_ci_inbound_snapshot_idx
on public.activities (client_id, lead_id)
where content_snapshot is not null and not ci_private.is_outbound_action(action);

-- The outbound-touch index (outbound_touch_index migration) carries the
-- content key, so that the per-touch relation reads it without the table.
-- An index built before the key existed is rebuilt once.
do $$
begin
  if exists (
    select 1 from pg_catalog.pg_indexes as i
    where i.schemaname = 'public' and i.indexname = 'activities_ci_outbound_touch_idx'
      and i.indexdef not like '%content_key%'
  ) then
    drop index public.activities_ci_outbound_touch_idx;
  end if;
end
$$;
create index if not exists activities_ci_outbound_touch_idx
on public.activities (client_id, lead_id, created_at, id) include (channel, led_to_booking, content_key)
where ci_private.is_outbound_action(action);

-- Read and key the missing content of a client's stored touches; returns how
-- many touches were keyed. Run by each refresh before it reads (cheap when
-- none are missing: the partial index is then empty). Features not yet read
-- are read by the trigger; touches read before keys existed are keyed
-- set-based (each distinct value stored once, then one join). (A composite
-- IS NOT NULL only when every field is: hence IS DISTINCT FROM NULL.)
-- security definer: a repair over one client's rows run by the refresh, which
-- has checked the caller's write access; it only ever sets content_features
-- and content_key, and adds the client's content values.
create or replace function ci_private.fill_content_features(p_client_id uuid)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_read integer;
  v_keyed integer;
begin
  -- Naming the column fires the trigger, which reads the snapshot (once) and
  -- keys it: the value set here is never stored.
  update public.activities as a
  set content_features = null
  where a.client_id = p_client_id
    and a.content_snapshot is not null
    and a.content_key is null
    and a.content_features is not distinct from null;
  get diagnostics v_read = row_count;

  insert into ci_private.content_keys (client_id, digest, features, label_text)
  select distinct on (v.digest) p_client_id, v.digest, v.features, v.label_text
  from (
    select
      ci_private.content_digest(a.content_features, l.label_text) as digest,
      a.content_features as features,
      l.label_text
    from public.activities as a
    cross join lateral (
      select ci_private.needed_label_text(a.content_features, a.content_snapshot) as label_text
    ) as l
    where a.client_id = p_client_id
      and a.content_snapshot is not null
      and a.content_key is null
      and a.content_features is distinct from null
  ) as v
  order by v.digest
  on conflict (client_id, digest) do nothing;

  update public.activities as a
  set content_key = k.key
  from ci_private.content_keys as k
  where a.client_id = p_client_id
    and a.content_snapshot is not null
    and a.content_key is null
    and a.content_features is distinct from null
    and k.client_id = p_client_id
    and k.digest = ci_private.content_digest(
      a.content_features, ci_private.needed_label_text(a.content_features, a.content_snapshot)
    );
  get diagnostics v_keyed = row_count;
  return v_read + v_keyed;
end
$$;

drop trigger if exists activities_ci_snapshot_features on public.activities;
create trigger activities_ci_snapshot_features
before insert or update of content_snapshot, content_features, client_id on public.activities
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
revoke execute on function ci_private.content_digest(ci_private.content_features, text) from public, anon, authenticated;
revoke execute on function ci_private.needed_label_text(ci_private.content_features, jsonb)
from public, anon, authenticated;
revoke execute on function ci_private.content_key_of(uuid, ci_private.content_features, text)
from public, anon, authenticated;
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
