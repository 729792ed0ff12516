-- The agents' context, rendered by the sidecar (`ci watch`, `ci context --store`)
-- from a client's stored patterns and kept here, so that the campaign-writing
-- agents and other services read it with plain SQL or RPC (contract section 6,
-- get_agent_context). One row per client: the latest rendering. The sidecar
-- writes it (service_role or the database owner); members read it.

create table if not exists public.agent_contexts (
  client_id uuid primary key references public.clients (id) on delete cascade,
  -- The structured context: statements per audience, each with its evidence.
  context jsonb not null,
  -- The same as prompt text, per audience (campaign, sequence, messaging).
  prompts jsonb not null default '{}'::jsonb,
  -- The computed_at of each pattern the context was rendered from ({who, what, when, how}).
  source_patterns jsonb not null default '{}'::jsonb,
  rendered_at timestamptz not null default now(),
  renderer text not null default 'ci_sidecar'
);

alter table public.agent_contexts enable row level security;
revoke all on public.agent_contexts from public, anon, authenticated;
grant select on public.agent_contexts to authenticated;
grant select, insert, update, delete on public.agent_contexts to service_role;

drop policy if exists agent_contexts_member_read on public.agent_contexts;
create policy agent_contexts_member_read on public.agent_contexts
for select to authenticated
using (client_id in (select ci_private.member_client_ids()));

-- The latest context of a client, or null when none was rendered yet.
-- security definer: as get_conversion_patterns, the access check decides.
create or replace function public.get_agent_context(p_client_id uuid)
returns jsonb
language plpgsql stable
security definer
set search_path = ''
as $$
begin
  perform ci_private.assert_client_access(p_client_id, false);
  return (
    select jsonb_build_object(
      'client_id', ac.client_id,
      'rendered_at', ac.rendered_at,
      'renderer', ac.renderer,
      'source_patterns', ac.source_patterns,
      'stale', exists (
        select 1 from public.conversion_patterns as cp
        where cp.client_id = ac.client_id
          and cp.computed_at > coalesce((ac.source_patterns ->> cp.pattern_type)::timestamptz, '-infinity')
      ),
      'context', ac.context,
      'prompts', ac.prompts
    )
    from public.agent_contexts as ac
    where ac.client_id = p_client_id
  );
end
$$;

revoke execute on function public.get_agent_context(uuid) from public, anon, authenticated;
grant execute on function public.get_agent_context(uuid) to authenticated, service_role;

comment on function public.get_agent_context(uuid) is
'The latest agent context the sidecar rendered for a client: {client_id, rendered_at, renderer, '
'source_patterns {who, what, when, how: computed_at of each pattern used}, stale (a pattern was '
'recomputed since), context {campaign, sequence, messaging, caveats: statements with evidence}, '
'prompts {campaign, sequence, messaging: prompt text}}; null when none was rendered yet. '
'Members, owners, admins and service_role; others get insufficient_privilege (42501), '
'an unknown client no_data_found (P0002).';
