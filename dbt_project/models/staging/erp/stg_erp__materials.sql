-- ERP materials: newest extract per material_number.
with

source as {{ segments.not_materialized() }} (
    select * from {{ source('raw', 'erp__materials') }}
),

renamed as {{ segments.not_materialized() }} (
    select
        -- ids
        {{ clean_text('material_number') }} as material_number,

        -- text
        {{ clean_text('description') }} as material_description,
        {{ clean_text('product_line') }} as product_line,
        {{ clean_text('category') }} as product_category,
        {{ clean_text('unit') }} as unit_of_measure,

        -- numbers
        standard_cost as standard_cost_eur,

        -- lineage
        _source_file,
        _line,
        _extract_ts

    from source
)

{{ keep_newest_version('renamed', ['material_number']) }}
