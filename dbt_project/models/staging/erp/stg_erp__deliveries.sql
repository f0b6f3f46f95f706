-- ERP deliveries: newest extract per delivery_id.
with

source as {{ segments.not_materialized() }} (
    select * from {{ source('raw', 'erp__deliveries') }}
),

renamed as {{ segments.not_materialized() }} (
    select
        -- ids
        {{ clean_text('delivery_id') }} as delivery_id,
        {{ clean_text('order_id') }} as order_id,
        line_no,

        -- numbers
        delivered_quantity,

        -- dates
        planned_ship_date,
        actual_ship_date,
        delivered_date,

        -- lineage
        _source_file,
        _line,
        _extract_ts

    from source
)

{{ keep_newest_version('renamed', ['delivery_id']) }}
