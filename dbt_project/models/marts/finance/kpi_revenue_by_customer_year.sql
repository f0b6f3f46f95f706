-- Revenue, cost and margin (EUR) per unified customer and calendar year of the order date,
-- from the first KPI year on (var kpi_first_year). Credit lines count negative. Lines without
-- a customer (unknown ERP customer, missing order header) are not attributable and left out.
with

order_lines as (
    select * from {{ ref('fct_order_lines') }}
    where
        customer_id is not null
        and order_year >= {{ var('kpi_first_year') }}
)

select
    customer_id,
    order_year as year,
    cast(count(distinct order_id) as integer) as orders,
    cast(count(*) as integer) as order_lines,
    {{ to_money('sum(revenue_eur)') }} as revenue_eur,
    {{ to_money('sum(cost_eur)') }} as cost_eur,
    {{ to_money('sum(margin_eur)') }} as margin_eur
from order_lines
group by customer_id, order_year
