-- Attached to the KPI mart in Dagster (a singular test with several refs needs a home).
{{ config(meta={'dagster': {'ref': {'name': 'kpi_revenue_by_customer_year'}}}) }}
-- Totals reconcile between layers (a blocking check, DESIGN.md "Severity policy"):
-- every staged order line of an order up to the as-of date (or without header) is in
-- fct_order_lines, and the KPI mart's yearly revenue, cost and margin equal the sums of the
-- attributable fact lines.
with

staged_lines as (
    select count(*) as line_count
    from {{ ref('stg_erp__order_lines') }} as order_lines
    left join {{ ref('stg_erp__sales_orders') }} as orders
        on orders.order_id = order_lines.order_id
    where orders.order_id is null or {{ is_within_as_of('orders.order_date') }}
),

fact_lines as (
    select count(*) as line_count from {{ ref('fct_order_lines') }}
),

fact_by_year as (
    select
        order_year as year,
        coalesce(sum(revenue_eur), 0) as revenue_eur,
        coalesce(sum(cost_eur), 0) as cost_eur,
        coalesce(sum(margin_eur), 0) as margin_eur
    from {{ ref('fct_order_lines') }}
    where customer_id is not null and order_year >= {{ var('kpi_first_year') }}
    group by order_year
),

kpi_by_year as (
    select
        year,
        coalesce(sum(revenue_eur), 0) as revenue_eur,
        coalesce(sum(cost_eur), 0) as cost_eur,
        coalesce(sum(margin_eur), 0) as margin_eur
    from {{ ref('kpi_revenue_by_customer_year') }}
    group by year
)

select
    'order lines: staged ' || cast(staged_lines.line_count as {{ dbt.type_string() }})
    || ', in fct_order_lines ' || cast(fact_lines.line_count as {{ dbt.type_string() }}) as problem
from staged_lines
cross join fact_lines
where staged_lines.line_count <> fact_lines.line_count

union all

select
    'year ' || cast(coalesce(fact_by_year.year, kpi_by_year.year) as {{ dbt.type_string() }})
    || ': kpi_revenue_by_customer_year does not match fct_order_lines' as problem
from fact_by_year
full outer join kpi_by_year
    on kpi_by_year.year = fact_by_year.year
where
    coalesce(fact_by_year.revenue_eur, 0) <> coalesce(kpi_by_year.revenue_eur, 0)
    or coalesce(fact_by_year.cost_eur, 0) <> coalesce(kpi_by_year.cost_eur, 0)
    or coalesce(fact_by_year.margin_eur, 0) <> coalesce(kpi_by_year.margin_eur, 0)
