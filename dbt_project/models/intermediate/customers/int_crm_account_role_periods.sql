-- The role each CRM account had over time (its account_type through
-- seeds/crm_account_type_roles.csv), one row per account and period, from every account version
-- (stg_crm__account_versions; staging's stg_crm__accounts keeps only the newest).
--
-- A version holds from its last_modified (the first version: from the account's creation)
-- until the next version; a deleted version, or one without a known account type, ends the
-- role. Consecutive versions with one role make one period. Dates, not timestamps: roles change
-- on a day, and several edits on one day leave the day's last role.
with

account_versions as (
    select
        account_id,
        lower(account_type) as account_type_key,
        cast(created_at as date) as created_on,
        cast(last_modified_at as date) as modified_on,
        is_deleted,
        last_modified_at,
        _extract_ts,
        _line,
        _source_file
    from {{ ref('stg_crm__account_versions') }}
),

account_type_roles as (
    select
        lower(trim(account_type)) as account_type_key,
        role
    from {{ ref('crm_account_type_roles') }}
),

-- The last version of each day (the contract's version order: last_modified, extract, line).
daily_versions as (
    select *
    from (
        select
            account_versions.*,
            row_number() over (
                partition by account_id, modified_on
                order by last_modified_at desc nulls last, _extract_ts desc nulls last,
                    _line desc, _source_file desc
            ) as rank_in_day
        from account_versions
    ) as ranked
    where rank_in_day = 1
),

versions as (
    select
        daily_versions.account_id,
        case when daily_versions.is_deleted then null else account_type_roles.role end as role,
        case
            when row_number() over (
                partition by daily_versions.account_id order by daily_versions.modified_on
            ) = 1
                then least(daily_versions.created_on, daily_versions.modified_on)
            else daily_versions.modified_on
        end as valid_from,
        lead(daily_versions.modified_on) over (
            partition by daily_versions.account_id order by daily_versions.modified_on
        ) as valid_to
    from daily_versions
    left join account_type_roles
        on account_type_roles.account_type_key = daily_versions.account_type_key
),

-- Gaps and islands: a new period starts where the role differs from the version before.
numbered as (
    select
        versions.*,
        sum(case when role_changed then 1 else 0 end) over (
            partition by account_id order by valid_from rows unbounded preceding
        ) as period_no
    from (
        select
            versions.*,
            role is distinct from lag(role) over (
                partition by account_id order by valid_from
            ) as role_changed
        from versions
    ) as versions
)

select
    account_id,
    role,
    min(valid_from) as valid_from,
    -- null: the role still holds in the newest version
    case
        when max(case when valid_to is null then 1 else 0 end) = 1 then null
        else max(valid_to)
    end as valid_to
from numbered
where role is not null
group by account_id, role, period_no
