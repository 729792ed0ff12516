-- Content snapshots for touches that arrive without one (seed task 16A.3).
-- The WHAT detector reads each outbound touch's content_snapshot. The host's
-- sending engines do not all write one yet: they write subject, content_preview
-- and metadata. A BEFORE INSERT trigger derives a snapshot from those for every
-- outbound touch inserted without one (it fills NEW.content_snapshot: no second
-- write), marked "derived": true, so that WHAT works with the host as it is.
-- ci_private.derive_content_snapshots(client) does the same for rows already
-- stored, and re-derives derived ones after a keyword dictionary change.
--
-- A derived snapshot holds:
--   subject, body: the subject and preview with the lead's own values put back
--     as placeholders ({company}, {first_name}, {last_name}, {title},
--     {industry}), so that a rendered subject groups with its template;
--   pain_points, cta, angle: from metadata when the engine recorded them
--     (pain_points / pain_points_used / pain_point, cta / cta_used, angle),
--     else read from the text with the client's keyword dictionary;
--   word_count, char_count: only from metadata (a preview may be cut short);
--   personalization: company_mention and industry_specific when the lead's
--     company / industry appear in the text, recent_news and mutual_connection
--     when metadata says so;
--   derived: true, derived_from: the fields used.
-- Nothing to derive from (a voice call without preview or metadata labels):
-- the snapshot stays null.

-- The placeholders of a lead's own values in a rendered text (longest value first,
-- values shorter than two characters left alone).
create or replace function ci_private.templatize(
  p_text text, p_company text, p_first_name text, p_last_name text, p_title text, p_industry text
)
returns text
language plpgsql immutable parallel safe
set search_path = ''
as $$
declare
  v_text text := p_text;
  v_value record;
begin
  if v_text is null then
    return null;
  end if;
  for v_value in
    select btrim(x.val) as val, x.placeholder
    from (
      values (p_company, '{company}'), (p_first_name, '{first_name}'), (p_last_name, '{last_name}'),
      (p_title, '{title}'), (p_industry, '{industry}')
    ) as x (val, placeholder)
    where length(btrim(x.val)) >= 2 and strpos(x.val, '{') = 0
    order by length(btrim(x.val)) desc, x.placeholder
  loop
    v_text := replace(v_text, v_value.val, v_value.placeholder);
  end loop;
  return v_text;
end
$$;

-- The derived snapshot of one touch, or null when there is nothing to derive from.
-- Defensive about metadata of any shape; ci_private.derive_content_snapshot_safe
-- wraps it so that a surprise never fails the host's insert.
create or replace function ci_private.derive_content_snapshot(
  p_client_id uuid, p_lead_id uuid, p_subject text, p_preview text, p_metadata jsonb
)
returns jsonb
language plpgsql stable
set search_path = ''
as $$
declare
  v_meta jsonb := case when jsonb_typeof(p_metadata) = 'object' then p_metadata else '{}'::jsonb end;
  v_lead record;
  v_subject text := nullif(btrim(p_subject), '');
  v_body text := nullif(btrim(p_preview), '');
  v_pains jsonb;
  v_cta text;
  v_angle text;
  v_found jsonb;
  v_text text;
  v_perso jsonb := '{}'::jsonb;
  v_key text;
  v_out jsonb;
begin
  select l.company, l.first_name, l.last_name, l.title, l.organization_industry
  into v_lead
  from public.leads as l
  where l.id = p_lead_id;

  -- Labels the engine recorded in metadata.
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

  v_text := concat_ws(' ', v_subject, v_body);
  if v_text <> '' and (v_pains is null or v_cta is null or v_angle is null) then
    v_found := ci_private.keyword_labels(p_client_id, v_text);
    v_pains := coalesce(v_pains, v_found -> 'pain_points');
    v_cta := coalesce(v_cta, v_found ->> 'cta');
    v_angle := coalesce(v_angle, v_found ->> 'angle');
  end if;

  -- Personalization: seen in the text, or recorded in metadata.
  if v_text <> '' and length(btrim(coalesce(v_lead.company, ''))) >= 2 then
    v_perso := v_perso || jsonb_build_object('company_mention', strpos(lower(v_text), lower(btrim(v_lead.company))) > 0);
  end if;
  if v_text <> '' and length(btrim(coalesce(v_lead.organization_industry, ''))) >= 2 then
    v_perso := v_perso || jsonb_build_object(
      'industry_specific', strpos(lower(v_text), lower(btrim(v_lead.organization_industry))) > 0
    );
  end if;
  foreach v_key in array array['company_mention', 'recent_news', 'mutual_connection', 'industry_specific'] loop
    if jsonb_typeof(v_meta -> 'personalization' -> v_key) = 'boolean' then
      v_perso := v_perso || jsonb_build_object(v_key, v_meta -> 'personalization' -> v_key);
    elsif jsonb_typeof(v_meta -> ('has_' || v_key)) = 'boolean' then
      v_perso := v_perso || jsonb_build_object(v_key, v_meta -> ('has_' || v_key));
    end if;
  end loop;

  v_out := jsonb_build_object(
    'subject', ci_private.templatize(
      v_subject, v_lead.company, v_lead.first_name, v_lead.last_name, v_lead.title, v_lead.organization_industry
    ),
    'body', ci_private.templatize(
      v_body, v_lead.company, v_lead.first_name, v_lead.last_name, v_lead.title, v_lead.organization_industry
    ),
    'pain_points', coalesce(v_pains, '[]'::jsonb),
    'cta', v_cta,
    'angle', v_angle,
    'personalization', v_perso,
    'derived', true,
    'derived_from', to_jsonb(array_remove(array[
      case when v_subject is not null then 'subject' end,
      case when v_body is not null then 'content_preview' end,
      case when v_meta <> '{}'::jsonb then 'metadata' end
    ], null))
  );
  if jsonb_typeof(v_meta -> 'word_count') = 'number' then
    v_out := v_out || jsonb_build_object('word_count', v_meta -> 'word_count');
  end if;
  if jsonb_typeof(v_meta -> 'char_count') = 'number' then
    v_out := v_out || jsonb_build_object('char_count', v_meta -> 'char_count');
  end if;
  return jsonb_strip_nulls(v_out);
end
$$;

-- derive_content_snapshot that never raises: an error gives no snapshot, and a
-- warning, rather than failing the host's insert.
create or replace function ci_private.derive_content_snapshot_safe(
  p_client_id uuid, p_lead_id uuid, p_subject text, p_preview text, p_metadata jsonb
)
returns jsonb
language plpgsql stable
set search_path = ''
as $$
begin
  return ci_private.derive_content_snapshot(p_client_id, p_lead_id, p_subject, p_preview, p_metadata);
exception when others then
  raise warning 'content snapshot not derived for lead %: %', p_lead_id, sqlerrm;
  return null;
end
$$;

-- Fill a missing content snapshot before an outbound touch is stored.
-- security definer: reads the lead and the keyword dictionary whatever the
-- inserting role's row-level policies; it only ever sets NEW's own snapshot.
create or replace function ci_private.activities_derive_snapshot()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  new.content_snapshot := ci_private.derive_content_snapshot_safe(
    new.client_id, new.lead_id, new.subject, new.content_preview, new.metadata
  );
  return new;
end
$$;

drop trigger if exists activities_ci_derive_snapshot on public.activities;
create trigger activities_ci_derive_snapshot
before insert on public.activities
for each row
when (new.content_snapshot is null and ci_private.is_outbound_action(new.action))
execute function ci_private.activities_derive_snapshot();

-- Derive snapshots for a client's stored outbound touches that have none (and,
-- with p_rederive, re-derive those derived before, e.g. after the client's
-- keyword dictionary changed). Returns the number of touches updated.
-- security definer: a repair run by the service or the scheduler over one
-- client's rows; snapshots written by engines are never touched.
create or replace function ci_private.derive_content_snapshots(p_client_id uuid, p_rederive boolean default false)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_count integer;
begin
  if p_client_id is null then
    raise exception 'derive_content_snapshots: client id is null' using errcode = 'null_value_not_allowed';
  end if;
  update public.activities as a
  set content_snapshot = d.snapshot
  from (
    select b.id, ci_private.derive_content_snapshot_safe(b.client_id, b.lead_id, b.subject, b.content_preview, b.metadata)
      as snapshot
    from public.activities as b
    where b.client_id = p_client_id
      and ci_private.is_outbound_action(b.action)
      and (
        b.content_snapshot is null
        or (p_rederive and jsonb_typeof(b.content_snapshot) = 'object' and b.content_snapshot -> 'derived' = 'true'::jsonb)
      )
  ) as d
  where a.id = d.id
    and d.snapshot is distinct from a.content_snapshot;
  get diagnostics v_count = row_count;
  return v_count;
end
$$;

revoke execute on function ci_private.templatize(text, text, text, text, text, text) from public, anon;
revoke execute on function ci_private.derive_content_snapshot(uuid, uuid, text, text, jsonb) from public, anon;
revoke execute on function ci_private.derive_content_snapshot_safe(uuid, uuid, text, text, jsonb) from public, anon;
revoke execute on function ci_private.activities_derive_snapshot() from public, anon, authenticated;
revoke execute on function ci_private.derive_content_snapshots(uuid, boolean) from public, anon, authenticated;
grant execute on function ci_private.templatize(text, text, text, text, text, text) to authenticated, service_role;
grant execute on function ci_private.derive_content_snapshot(uuid, uuid, text, text, jsonb) to authenticated, service_role;
grant execute on function ci_private.derive_content_snapshot_safe(uuid, uuid, text, text, jsonb)
to authenticated, service_role;
grant execute on function ci_private.derive_content_snapshots(uuid, boolean) to service_role;
