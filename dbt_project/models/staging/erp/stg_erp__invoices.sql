-- ERP invoices and credit notes: newest extract per invoice_id.
with

source as {{ segments.not_materialized() }} (
    select * from {{ source('raw', 'erp__invoices') }}
),

renamed as {{ segments.not_materialized() }} (
    select
        -- ids
        {{ clean_text('invoice_id') }} as invoice_id,
        {{ clean_text('order_id') }} as order_id,
        {{ clean_text('customer_number') }} as customer_number,

        -- text
        upper({{ clean_text('currency') }}) as currency,

        -- numbers (invoice currency)
        amount,

        -- flags
        coalesce(is_credit_note, false) as is_credit_note,

        -- dates
        invoice_date,
        due_date,
        cleared_on,

        -- lineage
        _source_file,
        _line,
        _extract_ts

    from source
)

{{ keep_newest_version('renamed', ['invoice_id']) }}
