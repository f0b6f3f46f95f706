-- ERP order lines: newest extract per (order_id, line_no). Negative quantities are
-- credit/return lines (source contract).
with

source as {{ segments.not_materialized() }} (
    select * from {{ source('raw', 'erp__order_lines') }}
),

renamed as {{ segments.not_materialized() }} (
    select
        -- ids
        {{ clean_text('order_id') }} as order_id,
        line_no,
        {{ clean_text('material_number') }} as material_number,

        -- numbers (order currency unless named _eur)
        quantity,
        unit_price,
        discount_pct,
        net_value,
        cost as line_cost_eur,

        -- flags
        quantity < 0 as is_credit,

        -- lineage
        _source_file,
        _line,
        _extract_ts

    from source
)

{{ keep_newest_version('renamed', ['order_id', 'line_no']) }}
