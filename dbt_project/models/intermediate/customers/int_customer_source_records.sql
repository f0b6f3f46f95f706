-- Every CRM account and ERP customer in one shape, with the unified customer it belongs to
-- (identity map) and the attributes the golden record is built from. A record the identity
-- map does not know keeps customer_id null (tested on the published map).
with

crm_accounts as (
    select * from {{ ref('stg_crm__accounts') }}
),

erp_customers as (
    select * from {{ ref('stg_erp__customers') }}
),

account_type_roles as (
    select
        lower(trim(account_type)) as account_type_key,
        role
    from {{ ref('crm_account_type_roles') }}
),

identity_map as (
    select * from {{ ref('stg_identity__customer_source_map') }}
),

match_records as (
    select source_system, source_id, name_norm
    from {{ ref('int_customer_match_records') }}
),

crm_records as (
    select
        'crm' as source_system,
        crm_accounts.account_id as source_id,
        crm_accounts.account_name as record_name,
        crm_accounts.billing_street as street,
        crm_accounts.billing_postal_code as postal_code,
        crm_accounts.billing_city as city,
        crm_accounts.country_code,
        crm_accounts.country_region,
        crm_accounts.owner_region,
        account_type_roles.role as crm_role,
        crm_accounts.parent_account_id,
        crm_accounts.vat_id,
        crm_accounts.website_domain,
        crm_accounts.industry,
        crm_accounts.ownership,
        crm_accounts.business_model,
        crm_accounts.legacy_segment,
        cast(null as {{ dbt.type_string() }}) as customer_group,
        crm_accounts.is_deleted,
        cast(crm_accounts.last_modified_at as timestamp) as record_changed_at
    from crm_accounts
    left join account_type_roles
        on account_type_roles.account_type_key = lower(crm_accounts.account_type)
),

erp_records as (
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
        cast(null as {{ dbt.type_string() }}) as crm_role,
        cast(null as {{ dbt.type_string() }}) as parent_account_id,
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
),

source_records as (
    select * from crm_records
    union all
    select * from erp_records
)

select
    source_records.source_system,
    source_records.source_id,
    identity_map.customer_id,
    identity_map.match_method,
    identity_map.match_probability,
    identity_map.match_evidence,
    coalesce(identity_map.is_anchor, false) as is_anchor,
    source_records.record_name,
    source_records.street,
    source_records.postal_code,
    source_records.city,
    source_records.country_code,
    source_records.country_region,
    source_records.owner_region,
    source_records.crm_role,
    match_records.name_norm,
    source_records.parent_account_id,
    source_records.vat_id,
    source_records.website_domain,
    source_records.industry,
    source_records.ownership,
    source_records.business_model,
    source_records.legacy_segment,
    source_records.customer_group,
    source_records.is_deleted,
    source_records.record_changed_at
from source_records
left join identity_map
    on identity_map.source_system = source_records.source_system
    and identity_map.source_id = source_records.source_id
left join match_records
    on match_records.source_system = source_records.source_system
    and match_records.source_id = source_records.source_id
