{{ config(materialized='table', schema='steward') }}
-- Legacy labels in no mapping, for the steward queue (steward.findings__<stage>, picked up by
-- dagster_project/steward/queue.py): one finding per system, field and label, with how many
-- customers carry it and how much revenue (EUR, orders up to the as-of date) they have.
with

labels as (
    select * from {{ ref('int_customer_legacy_labels_mapped') }}
    where mapping_status = 'unmapped'
        and not is_deleted
),

-- Revenue per ERP customer number from the fact table (built in the same dbt run) rather than
-- from the view int_order_lines_converted_to_eur, which would join 20M lines to their orders
-- once more; fct_order_lines has exactly the view's lines and revenue_eur.
revenue_per_customer_number as (
    select
        customer_number,
        sum(revenue_eur) as revenue_eur
    from {{ ref('fct_order_lines') }}
    group by customer_number
),

revenue as (
    select
        source_records.customer_id,
        sum(order_lines.revenue_eur) as revenue_eur
    from revenue_per_customer_number as order_lines
    inner join {{ ref('int_customer_source_records') }} as source_records
        on source_records.source_system = 'erp'
        and source_records.source_id = order_lines.customer_number
    group by source_records.customer_id
),

per_label as (
    select
        labels.source_system,
        labels.label_field,
        labels.label,
        count(*) as record_count,
        count(distinct labels.customer_id) as customer_count
    from labels
    group by labels.source_system, labels.label_field, labels.label
),

customers_per_label as (
    select distinct source_system, label_field, label, customer_id
    from labels
),

revenue_per_label as (
    select
        customers_per_label.source_system,
        customers_per_label.label_field,
        customers_per_label.label,
        sum(revenue.revenue_eur) as revenue_eur
    from customers_per_label
    left join revenue
        on revenue.customer_id = customers_per_label.customer_id
    group by customers_per_label.source_system, customers_per_label.label_field,
        customers_per_label.label
)

select
    'unmapped_label' as kind,
    'warn' as severity,
    per_label.source_system,
    case when per_label.source_system = 'crm' then 'accounts' else 'customers' end as entity,
    cast(null as {{ dbt.type_string() }}) as source_file,
    cast(null as bigint) as line,
    cast(null as {{ dbt.type_string() }}) as record_key,
    per_label.label_field as column_name,
    'legacy_label_map' as rule,
    per_label.label as observed_value,
    cast(per_label.customer_count as bigint) as customers_affected,
    cast(coalesce(revenue_per_label.revenue_eur, 0) as double) as revenue_eur_affected,
    'Legacy label ' || per_label.source_system || '.' || per_label.label_field || ' = '''
        || per_label.label || ''' on ' || cast(per_label.record_count as {{ dbt.type_string() }})
        || ' live records is in no mapping: add it to seeds/legacy_label_map.csv' as message
from per_label
left join revenue_per_label
    on revenue_per_label.source_system = per_label.source_system
    and revenue_per_label.label_field = per_label.label_field
    and revenue_per_label.label = per_label.label
