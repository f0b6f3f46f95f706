-- Every CRM account and ERP customer in one shape (int_customer_records_unioned), with the
-- unified customer it belongs to (identity map), the role its CRM account type gives and its
-- name normalised for matching. A record the identity map does not know keeps customer_id null
-- (tested on the published map).
with

source_records as (
    select * from {{ ref('int_customer_records_unioned') }}
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
    account_type_roles.role as crm_role,
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
left join account_type_roles
    on account_type_roles.account_type_key = lower(source_records.account_type)
left join identity_map
    on identity_map.source_system = source_records.source_system
    and identity_map.source_id = source_records.source_id
left join match_records
    on match_records.source_system = source_records.source_system
    and match_records.source_id = source_records.source_id
