-- The content features of a snapshot, computed the same way in PL/pgSQL
-- (issue 15: the refresh's content fill runs it once per distinct snapshot,
-- and an engine's rendered bodies make nearly every snapshot distinct).
--
-- The SQL version (content_features migration) could not be inlined (a FROM
-- over jsonb_to_record and a lateral), so each call ran a sub-query through
-- the SQL-function executor: about 410 us a snapshot, against about 15 us of
-- the normalisation and label work it does (5,000 rendered snapshots: 2.05 s).
-- A 100k-lead import's first fill spent over 20 minutes there. Same results:
-- the pgTAP file 031 (every junk reason and field) and a comparison of the two
-- over the generator's snapshots (tests/test_content_features_plpgsql.py).
create or replace function ci_private.content_features_of(p_snapshot jsonb)
returns ci_private.content_features
language plpgsql immutable parallel safe
set search_path = ''
as $$
declare
  v_subject jsonb;
  v_body jsonb;
  v_pains jsonb;
  v_pains_used jsonb;
  v_cta jsonb;
  v_cta_used jsonb;
  v_angle jsonb;
  v_words jsonb;
  v_chars jsonb;
  v_perso jsonb;
  v_level jsonb;
  v_derived jsonb;
  v_junk text;
begin
  if p_snapshot is null then
    return null;
  end if;
  if jsonb_typeof(p_snapshot) <> 'object' then
    return row(
      'not_object', false, false, null, null, null, null, null, null, null, null, null, null, null, false
    )::ci_private.content_features;
  end if;
  v_subject := p_snapshot -> 'subject';
  v_body := p_snapshot -> 'body';
  v_pains := p_snapshot -> 'pain_points';
  v_pains_used := p_snapshot -> 'pain_points_used';
  v_cta := p_snapshot -> 'cta';
  v_cta_used := p_snapshot -> 'cta_used';
  v_angle := p_snapshot -> 'angle';
  v_words := p_snapshot -> 'word_count';
  v_chars := p_snapshot -> 'char_count';
  v_perso := p_snapshot -> 'personalization';
  v_level := p_snapshot -> 'personalization_level';
  v_derived := p_snapshot -> 'derived';

  v_junk := case
    when not (
      ci_private.json_type_is(v_subject, 'string') and ci_private.json_type_is(v_body, 'string')
      and ci_private.json_type_is(v_cta, 'string') and ci_private.json_type_is(v_cta_used, 'string')
      and ci_private.json_type_is(v_angle, 'string')
      and ci_private.json_type_is(v_pains, 'array') and ci_private.json_type_is(v_pains_used, 'array')
      and ci_private.json_type_is(v_words, 'number') and ci_private.json_type_is(v_chars, 'number')
      and ci_private.json_type_is(v_level, 'number')
      and ci_private.json_type_is(v_perso, 'object') and ci_private.json_type_is(v_derived, 'boolean')
      and coalesce(v_perso ->> 'company_mention', 'true') in ('true', 'false')
      and coalesce(v_perso ->> 'recent_news', 'true') in ('true', 'false')
      and coalesce(v_perso ->> 'mutual_connection', 'true') in ('true', 'false')
      and coalesce(v_perso ->> 'industry_specific', 'true') in ('true', 'false')
      and ci_private.json_type_is(p_snapshot -> 'has_company_mention', 'boolean')
      and ci_private.json_type_is(p_snapshot -> 'has_recent_news', 'boolean')
      and ci_private.json_type_is(p_snapshot -> 'has_mutual_connection', 'boolean')
      and ci_private.json_type_is(p_snapshot -> 'has_industry_specific', 'boolean')
    ) then 'wrong_type'
    when octet_length(ci_private.json_text(v_subject)) > 998 or pg_column_size(v_body) > 100000 then 'oversized'
    when (v_subject is not null or v_body is not null)
      and coalesce(v_subject, '""') = '""' and coalesce(v_body, '""') = '""' then 'empty'
  end;

  if v_junk is not null then
    return row(
      v_junk, coalesce(ci_private.json_bool(v_derived), false), false,
      null, null, null, null, null, null, null, null, null, null, null, false
    )::ci_private.content_features;
  end if;

  return row(
    null,
    coalesce(ci_private.json_bool(v_derived), false),
    coalesce(v_subject <> '""' and jsonb_typeof(v_subject) = 'string', false)
    or coalesce(v_body <> '""' and jsonb_typeof(v_body) = 'string', false),
    ci_private.normalize_template(ci_private.json_text(v_subject)),
    coalesce(ci_private.label_array(v_pains), ci_private.label_array(v_pains_used)),
    ci_private.normalize_label(coalesce(ci_private.json_text(v_cta), ci_private.json_text(v_cta_used))),
    ci_private.normalize_label(ci_private.json_text(v_angle)),
    coalesce(
      ci_private.json_int(v_words),
      -- Words of an engine's body that did not state them (spaces + 1); never of
      -- a derived preview, which may be cut short.
      case when v_derived is distinct from 'true'::jsonb and jsonb_typeof(v_body) = 'string'
        and pg_column_size(v_body) <= 100000 and v_body <> '""'
        then octet_length(btrim(v_body #>> '{}')) - octet_length(replace(btrim(v_body #>> '{}'), ' ', '')) + 1
      end
    ),
    coalesce(
      ci_private.json_int(v_chars),
      case when v_derived is distinct from 'true'::jsonb and jsonb_typeof(v_body) = 'string'
        then length(v_body #>> '{}')
      end
    ),
    coalesce(ci_private.text_bool(v_perso ->> 'company_mention'), ci_private.json_bool(p_snapshot -> 'has_company_mention')),
    coalesce(ci_private.text_bool(v_perso ->> 'recent_news'), ci_private.json_bool(p_snapshot -> 'has_recent_news')),
    coalesce(
      ci_private.text_bool(v_perso ->> 'mutual_connection'), ci_private.json_bool(p_snapshot -> 'has_mutual_connection')
    ),
    coalesce(
      ci_private.text_bool(v_perso ->> 'industry_specific'), ci_private.json_bool(p_snapshot -> 'has_industry_specific')
    ),
    ci_private.json_int(v_level),
    ci_private.label_text(v_subject, v_body, v_pains, v_pains_used, v_cta, v_cta_used, v_angle, v_derived) is not null
  )::ci_private.content_features;
end
$$;

revoke execute on function ci_private.content_features_of(jsonb) from public, anon;
grant execute on function ci_private.content_features_of(jsonb) to authenticated, service_role;
