-- CRM contacts: newest version per contact_id. Personal data stays out: names and phone are
-- dropped; the e-mail survives only as its company domain and a one-way hash (to recognise
-- the same person on two accounts without reading who it is).
with

source as {{ segments.not_materialized() }} (
    select * from {{ source('raw', 'crm__contacts') }}
),

renamed as {{ segments.not_materialized() }} (
    select
        -- ids
        {{ clean_text('contact_id') }} as contact_id,
        {{ clean_text('account_id') }} as account_id,

        -- text (no personal data)
        {{ clean_text('job_title') }} as job_title,
        lower({{ clean_text(dbt.split_part(clean_text('email'), "'@'", 2)) }}) as email_domain,
        case
            when {{ clean_text('email') }} is not null
                then {{ dbt.hash('lower(' ~ clean_text('email') ~ ')') }}
        end as email_hash,
        {{ clean_text('phone') }} is not null as has_phone,

        -- timestamps
        created_at,
        last_modified as last_modified_at,

        -- lineage
        _source_file,
        _line,
        _extract_ts

    from source
)

{{ keep_newest_version('renamed', ['contact_id'], ['last_modified_at']) }}
