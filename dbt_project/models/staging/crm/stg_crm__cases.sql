-- CRM service cases: newest version per case_id.
with

source as {{ segments.not_materialized() }} (
    select * from {{ source('raw', 'crm__cases') }}
),

renamed as {{ segments.not_materialized() }} (
    select
        -- ids
        {{ clean_text('case_id') }} as case_id,
        {{ clean_text('account_id') }} as account_id,
        {{ clean_text('order_reference') }} as order_id,

        -- text
        {{ clean_text('case_type') }} as case_type,
        {{ clean_text('severity') }} as severity,
        {{ clean_text('status') }} as status,

        -- timestamps
        created_at,
        closed_at,
        last_modified as last_modified_at,

        -- lineage
        _source_file,
        _line,
        _extract_ts

    from source
)

{{ keep_newest_version('renamed', ['case_id'], ['last_modified_at']) }}
