-- CRM service agreements: newest version per agreement_id.
with

source as {{ segments.not_materialized() }} (
    select * from {{ source('raw', 'crm__service_agreements') }}
),

renamed as {{ segments.not_materialized() }} (
    select
        -- ids
        {{ clean_text('agreement_id') }} as agreement_id,
        {{ clean_text('account_id') }} as account_id,

        -- text
        {{ clean_text('agreement_type') }} as agreement_type,
        {{ clean_text('status') }} as status,
        upper({{ clean_text('currency') }}) as currency,

        -- numbers
        annual_value,

        -- dates
        start_date,
        end_date,
        last_modified as last_modified_at,

        -- lineage
        _source_file,
        _line,
        _extract_ts

    from source
)

{{ keep_newest_version('renamed', ['agreement_id'], ['last_modified_at']) }}
