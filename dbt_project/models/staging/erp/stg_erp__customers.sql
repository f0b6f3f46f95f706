-- ERP customers: newest extract per customer_number (leading zeros kept), names trimmed and
-- joined, country as ISO alpha-2, VAT id in one spelling, ERP flags as plain booleans.
with

source as (
    select * from {{ source('raw', 'erp__customers') }}
),

countries as (
    {{ country_lookup() }}
),

renamed as (
    select
        -- ids
        {{ clean_text('source.customer_number') }} as customer_number,

        -- names and addresses
        {{ clean_text('source.name1') }} as name1,
        {{ clean_text('source.name2') }} as name2,
        {{ clean_text(dbt.concat([
            "coalesce(trim(source.name1), '')", "' '", "coalesce(trim(source.name2), '')"
        ])) }} as customer_name,
        {{ clean_text('source.street') }} as street,
        {{ clean_text('source.postal_code') }} as postal_code,
        {{ clean_text('source.city') }} as city,
        {{ clean_text('source.country') }} as country_as_typed,
        countries.country_code as country_code,
        countries.region as country_region,
        {{ clean_text('source.vat_number') }} as vat_number_as_typed,
        {{ normalize_vat_id('source.vat_number', 'countries.vat_prefix') }} as vat_id,

        -- ERP codes
        upper({{ clean_text('source.customer_group') }}) as customer_group,
        upper({{ clean_text('source.payment_terms') }}) as payment_terms,
        {{ clean_text('source.sales_org') }} as sales_org,

        -- numbers
        source.credit_limit as credit_limit,

        -- flags: ERP 'X'/empty arrives as true/false; treat a missing value as not set
        coalesce(source.deletion_flag, false) as is_deleted,
        coalesce(source.order_block, false) as is_order_blocked,

        -- dates
        source.created_on as created_on,

        -- lineage
        source._source_file as _source_file,
        source._line as _line,
        source._extract_ts as _extract_ts

    from source
    left join countries
        on countries.country_key = {{ country_lookup_key('source.country') }}
)

{{ keep_newest_version('renamed', ['customer_number']) }}
