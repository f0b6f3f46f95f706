-- CRM opportunities (projects): newest version per opportunity_id.
with

source as {{ segments.not_materialized() }} (
    select * from {{ source('raw', 'crm__opportunities') }}
),

renamed as {{ segments.not_materialized() }} (
    select
        -- ids
        {{ clean_text('opportunity_id') }} as opportunity_id,
        {{ clean_text('account_id') }} as account_id,

        -- text
        {{ clean_text('name') }} as opportunity_name,
        {{ clean_text('stage') }} as stage,
        {{ clean_text('product_type') }} as product_type,
        upper({{ clean_text('currency') }}) as currency,

        -- numbers
        amount,
        probability as probability_pct,

        -- flags
        includes_service_agreement,

        -- dates
        close_date,
        created_at,
        last_modified as last_modified_at,

        -- lineage
        _source_file,
        _line,
        _extract_ts

    from source
)

{{ keep_newest_version('renamed', ['opportunity_id'], ['last_modified_at']) }}
