-- The identity map as dbt sees it: keys trimmed like the staged records they point at.
with

source as (
    select * from {{ source('identity', 'customer_source_map') }}
),

renamed as (
    select
        -- ids
        lower({{ clean_text('source_system') }}) as source_system,
        {{ clean_text('source_id') }} as source_id,
        {{ clean_text('customer_id') }} as customer_id,

        -- match evidence
        lower({{ clean_text('match_method') }}) as match_method,
        match_probability,
        match_evidence,
        coalesce(is_anchor, false) as is_anchor

    from source
)

select * from renamed
