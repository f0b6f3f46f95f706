-- ERP exchange rates: newest extract per (currency, rate_date).
with

source as {{ segments.not_materialized() }} (
    select * from {{ source('raw', 'erp__fx_rates') }}
),

renamed as {{ segments.not_materialized() }} (
    select
        -- ids
        upper({{ clean_text('currency') }}) as currency,

        -- numbers
        eur_per_unit,

        -- dates
        rate_date,
        {{ month_start('rate_date') }} as rate_month,

        -- lineage
        _source_file,
        _line,
        _extract_ts

    from source
)

{{ keep_newest_version('renamed', ['currency', 'rate_date']) }}
