-- CRM accounts: newest version per account_id, trimmed, country as ISO alpha-2, VAT id in one
-- spelling, website reduced to its domain.
with

source as (
    select * from {{ source('raw', 'crm__accounts') }}
),

countries as (
    {{ country_lookup() }}
),

renamed as (
    select
        -- ids
        {{ clean_text('source.account_id') }} as account_id,
        {{ clean_text('source.parent_account_id') }} as parent_account_id,
        -- SAP keeps customer numbers as 10 digits with leading zeros ("ALPHA conversion"):
        -- sales often type the link without them.
        case
            when {{ regex_matches(clean_text('source.erp_customer_number'), '^[0-9]{1,9}$') }}
                then lpad({{ clean_text('source.erp_customer_number') }}, 10, '0')
            else {{ clean_text('source.erp_customer_number') }}
        end as erp_customer_number,

        -- names and addresses
        {{ clean_text('source.account_name') }} as account_name,
        {{ clean_text('source.website') }} as website,
        {{ normalize_web_domain('source.website') }} as website_domain,
        {{ clean_text('source.vat_id') }} as vat_id_as_typed,
        {{ normalize_vat_id('source.vat_id', 'countries.vat_prefix') }} as vat_id,
        {{ clean_text('source.billing_street') }} as billing_street,
        {{ clean_text('source.billing_postal_code') }} as billing_postal_code,
        {{ clean_text('source.billing_city') }} as billing_city,
        {{ clean_text('source.billing_country') }} as billing_country_as_typed,
        countries.country_code as country_code,
        countries.region as country_region,

        -- labels and picklists
        {{ clean_text('source.industry') }} as industry,
        {{ clean_text('source.legacy_segment') }} as legacy_segment,
        {{ clean_text('source.account_type') }} as account_type,
        {{ clean_text('source.ownership') }} as ownership,
        {{ clean_text('source.business_model') }} as business_model,
        {{ clean_text('source.operating_environment') }} as operating_environment,
        {{ clean_text('source.product_usage') }} as product_usage,
        {{ clean_text('source.segment') }} as segment,
        {{ clean_text('source.sub_segment') }} as sub_segment,
        {{ clean_text('source.value_profile') }} as value_profile,
        {{ clean_text('source.owner_region') }} as owner_region,

        -- numbers
        source.employees as employees,
        source.annual_revenue_eur as annual_revenue_eur,

        -- flags: an empty CRM boolean means "not deleted"
        coalesce(source.is_deleted, false) as is_deleted,

        -- timestamps
        source.created_at as created_at,
        source.last_modified as last_modified_at,

        -- lineage
        source._source_file as _source_file,
        source._line as _line,
        source._extract_ts as _extract_ts

    from source
    left join countries
        on countries.country_key = {{ country_lookup_key('source.billing_country') }}
)

{{ keep_newest_version('renamed', ['account_id'], ['last_modified_at']) }}
