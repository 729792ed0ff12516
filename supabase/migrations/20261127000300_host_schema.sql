-- Host tables and enums that this layer needs (contract section 2).
-- The host application owns them: on its database they exist and are left as
-- they are. On a bare server they are created here, and the names of the ones
-- created are recorded so that the tenancy migration puts row-level security on
-- exactly those (the host secures its own).

create table if not exists ci_private.layer_created_tables (
  table_name text primary key,
  created_at timestamptz not null default pg_catalog.now()
);
revoke all on ci_private.layer_created_tables from public;

do $host$
begin
  if pg_catalog.to_regtype('public.membership_role') is null then
    create type public.membership_role as enum ('owner', 'admin', 'member', 'viewer');
  end if;
  if pg_catalog.to_regtype('public.lead_status') is null then
    create type public.lead_status as enum (
      'new', 'enriched', 'scored', 'in_sequence', 'converted', 'unsubscribed', 'bounced'
    );
  end if;
  if pg_catalog.to_regtype('public.channel_type') is null then
    create type public.channel_type as enum ('email', 'sms', 'linkedin', 'voice', 'mail');
  end if;

  if pg_catalog.to_regclass('public.clients') is null then
    create table public.clients (
      id uuid primary key default gen_random_uuid(),
      name text not null,
      icp_industries text[],
      icp_company_sizes text[],
      icp_locations text[],
      icp_titles text[],
      created_at timestamptz not null default pg_catalog.now(),
      updated_at timestamptz not null default pg_catalog.now(),
      deleted_at timestamptz
    );
    insert into ci_private.layer_created_tables (table_name) values ('clients');
  end if;

  if pg_catalog.to_regclass('public.memberships') is null then
    create table public.memberships (
      id uuid primary key default gen_random_uuid(),
      user_id uuid not null references auth.users (id) on delete cascade,
      client_id uuid not null references public.clients (id) on delete cascade,
      role public.membership_role not null default 'member',
      accepted_at timestamptz,
      created_at timestamptz not null default pg_catalog.now(),
      deleted_at timestamptz,
      unique (user_id, client_id)
    );
    create index memberships_client_id_idx on public.memberships (client_id);
    insert into ci_private.layer_created_tables (table_name) values ('memberships');
  end if;

  if pg_catalog.to_regclass('public.campaigns') is null then
    create table public.campaigns (
      id uuid primary key default gen_random_uuid(),
      client_id uuid not null references public.clients (id) on delete cascade,
      name text not null,
      timezone text,
      allocation_email integer not null default 100,
      allocation_sms integer not null default 0,
      allocation_linkedin integer not null default 0,
      allocation_voice integer not null default 0,
      allocation_mail integer not null default 0,
      created_at timestamptz not null default pg_catalog.now(),
      deleted_at timestamptz
    );
    create index campaigns_client_id_idx on public.campaigns (client_id);
    insert into ci_private.layer_created_tables (table_name) values ('campaigns');
  end if;

  if pg_catalog.to_regclass('public.leads') is null then
    create table public.leads (
      id uuid primary key default gen_random_uuid(),
      client_id uuid not null references public.clients (id) on delete cascade,
      campaign_id uuid references public.campaigns (id) on delete set null,
      email text,
      phone text,
      first_name text,
      last_name text,
      title text,
      company text,
      domain text,
      linkedin_url text,
      personal_email text,
      email_verified boolean,
      phone_verified boolean,
      organization_industry text,
      organization_employee_count integer,
      organization_country text,
      organization_is_hiring boolean,
      organization_latest_funding_date date,
      employment_start_date date,
      bounce_count integer default 0,
      status public.lead_status not null default 'new',
      als_score integer,
      als_tier text,
      als_data_quality integer,
      als_authority integer,
      als_company_fit integer,
      als_timing integer,
      als_risk integer,
      created_at timestamptz not null default pg_catalog.now(),
      updated_at timestamptz not null default pg_catalog.now(),
      deleted_at timestamptz
    );
    create index leads_client_id_idx on public.leads (client_id);
    insert into ci_private.layer_created_tables (table_name) values ('leads');
  end if;

  if pg_catalog.to_regclass('public.activities') is null then
    create table public.activities (
      id uuid primary key default gen_random_uuid(),
      client_id uuid not null references public.clients (id) on delete cascade,
      campaign_id uuid references public.campaigns (id) on delete set null,
      lead_id uuid not null references public.leads (id) on delete cascade,
      channel public.channel_type not null,
      action text not null,
      sequence_step integer,
      subject text,
      content_preview text,
      metadata jsonb,
      created_at timestamptz not null default pg_catalog.now()
    );
    insert into ci_private.layer_created_tables (table_name) values ('activities');
  end if;
end
$host$;
