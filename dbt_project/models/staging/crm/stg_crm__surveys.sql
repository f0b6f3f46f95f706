-- Customer surveys: newest extract per survey_id. The free-text comment is personal data and
-- is not staged; only whether one was given.
with

source as {{ segments.not_materialized() }} (
    select * from {{ source('raw', 'crm__surveys') }}
),

renamed as {{ segments.not_materialized() }} (
    select
        -- ids
        {{ clean_text('survey_id') }} as survey_id,
        {{ clean_text('account_id') }} as account_id,

        -- answers
        csat,
        nps,
        {{ clean_text('comment') }} is not null as has_comment,

        -- timestamps
        responded_at,

        -- lineage
        _source_file,
        _line,
        _extract_ts

    from source
)

{{ keep_newest_version('renamed', ['survey_id']) }}
