{{ config(severity='warn', meta={'dagster': {'ref': {'name': 'stg_identity__customer_source_map'}}}) }}
-- Identity map rows that point at no staged CRM account or ERP customer (the map was built
-- from another extract, or a key was mistyped). Their customers cannot show in dim_customer.
select
    identity_map.source_system,
    identity_map.source_id,
    identity_map.customer_id
from {{ ref('stg_identity__customer_source_map') }} as identity_map
left join {{ ref('int_customer_source_records') }} as records
    on records.source_system = identity_map.source_system
    and records.source_id = identity_map.source_id
where records.source_id is null
