-- Every staged CRM account and ERP customer in one shape, as staged: the one place the two
-- systems' columns are mapped onto each other. Identity matching (int_customer_match_records)
-- and the golden record (int_customer_source_records) both start from it, so it must not depend
-- on the identity map.
with

crm_accounts as (
    select * from {{ ref('stg_crm__accounts') }}
),

erp_customers as (
    select * from {{ ref('stg_erp__customers') }}
)

select
    'crm' as source_system,
    account_id as source_id,
    account_name as record_name,
    billing_street as street,
    billing_postal_code as postal_code,
    billing_city as city,
    country_code,
    country_region,
    owner_region,
    account_type,
    parent_account_id,
    erp_customer_number,
    vat_id,
    website_domain,
    industry,
    ownership,
    business_model,
    legacy_segment,
    cast(null as {{ dbt.type_string() }}) as customer_group,
    is_deleted,
    cast(last_modified_at as timestamp) as record_changed_at
from crm_accounts
union all
select
    'erp' as source_system,
    customer_number as source_id,
    customer_name as record_name,
    street,
    postal_code,
    city,
    country_code,
    country_region,
    cast(null as {{ dbt.type_string() }}) as owner_region,
    cast(null as {{ dbt.type_string() }}) as account_type,
    cast(null as {{ dbt.type_string() }}) as parent_account_id,
    cast(null as {{ dbt.type_string() }}) as erp_customer_number,
    vat_id,
    cast(null as {{ dbt.type_string() }}) as website_domain,
    cast(null as {{ dbt.type_string() }}) as industry,
    cast(null as {{ dbt.type_string() }}) as ownership,
    cast(null as {{ dbt.type_string() }}) as business_model,
    cast(null as {{ dbt.type_string() }}) as legacy_segment,
    customer_group,
    is_deleted,
    -- ERP has no change timestamp: a newer creation date marks the current duplicate
    cast(created_on as timestamp) as record_changed_at
from erp_customers
