-- Every version of every CRM account the extracts delivered (stg_crm__accounts keeps only the
-- newest), cleaned like stg_crm__accounts, with only what the account history needs: its type,
-- its group parent and its deletion flag over time (int_crm_account_role_periods).
with

source as (
    select * from {{ source('raw', 'crm__accounts') }}
)

select
    -- ids
    {{ clean_text('account_id') }} as account_id,
    {{ clean_text('parent_account_id') }} as parent_account_id,

    -- the account's role and state in this version
    {{ clean_text('account_type') }} as account_type,
    -- an empty CRM boolean means "not deleted"
    coalesce(is_deleted, false) as is_deleted,

    -- timestamps
    created_at,
    last_modified as last_modified_at,

    -- lineage
    _source_file,
    _line,
    _extract_ts

from source
where {{ clean_text('account_id') }} is not null
