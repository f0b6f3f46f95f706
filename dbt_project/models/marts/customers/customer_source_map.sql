-- The identity map as published: every CRM account and ERP customer exactly once, the unified
-- customer it belongs to, how it was matched, and both names (the record's and the customer's).
with

records as (
    select * from {{ ref('int_customer_source_records') }}
),

customers as (
    select customer_id, customer_name from {{ ref('dim_customer') }}
)

select
    records.source_system,
    records.source_id,
    records.customer_id,
    records.match_method,
    records.match_probability,
    records.match_evidence,
    records.is_anchor,
    records.record_name as source_record_name,
    customers.customer_name,
    records.country_code as source_country_code,
    records.is_deleted as is_source_record_deleted
from records
left join customers
    on customers.customer_id = records.customer_id
