-- ERP sales order headers: newest extract per order_id.
with

source as {{ segments.not_materialized() }} (
    select * from {{ source('raw', 'erp__sales_orders') }}
),

renamed as {{ segments.not_materialized() }} (
    select
        -- ids
        {{ clean_text('order_id') }} as order_id,
        {{ clean_text('customer_number') }} as customer_number,
        {{ clean_text('end_user_customer_number') }} as end_user_customer_number,

        -- text
        {{ clean_text('order_type') }} as order_type,
        {{ clean_text('sales_org') }} as sales_org,
        upper({{ clean_text('currency') }}) as currency,

        -- numbers
        coalesce(change_count, 0) as change_count,

        -- dates
        order_date,
        {{ month_start('order_date') }} as order_month,
        requested_delivery_date,
        created_on,

        -- lineage
        _source_file,
        _line,
        _extract_ts

    from source
)

{{ keep_newest_version('renamed', ['order_id']) }}
