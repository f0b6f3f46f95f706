-- Order lines with their order header, material and EUR amounts (DESIGN.md, metric dictionary):
-- revenue = net value at the fx rate of the order month, credit lines negative; cost = the
-- line's cost (EUR) else quantity x material standard cost; margin = revenue - cost.
-- Orders after the as-of date are left out; lines whose order header is missing are kept
-- (flagged) so that their value stays visible to stewards.
with

order_lines as (
    select * from {{ ref('stg_erp__order_lines') }}
),

orders as (
    select * from {{ ref('stg_erp__sales_orders') }}
),

materials as (
    select * from {{ ref('stg_erp__materials') }}
),

fx_rates as (
    select * from {{ ref('int_fx_rates_filled_monthly') }}
),

joined as (
    select
        -- ids
        order_lines.order_id,
        order_lines.line_no,
        orders.customer_number,
        orders.end_user_customer_number,
        order_lines.material_number,

        -- order and product
        orders.order_date,
        orders.order_month,
        orders.order_type,
        orders.currency,
        materials.product_line,
        materials.product_category,

        -- amounts as recorded
        order_lines.quantity,
        order_lines.net_value,
        order_lines.line_cost_eur,
        materials.standard_cost_eur,
        fx_rates.eur_per_unit as fx_eur_per_unit,
        fx_rates.rate_month as fx_rate_month,

        -- flags
        order_lines.is_credit,
        orders.order_id is not null as has_order_header,
        coalesce(fx_rates.is_stale_rate, false) as is_stale_fx_rate,
        orders.order_id is not null and fx_rates.eur_per_unit is null as is_missing_fx_rate

    from order_lines
    left join orders
        on orders.order_id = order_lines.order_id
    left join materials
        on materials.material_number = order_lines.material_number
    left join fx_rates
        on fx_rates.currency = orders.currency
        and fx_rates.month_start = orders.order_month
    where
        orders.order_id is null
        or {{ is_within_as_of('orders.order_date') }}
),

-- Credit lines count negative whichever sign the source gave their value and cost.
signed as (
    select
        joined.*,
        case when is_credit then -abs(net_value) else net_value end as signed_net_value,
        -- Each branch rounded to money on its own: a CASE that mixed the line cost's
        -- decimal(18,4) with the product's decimal(36,8) ran in 128-bit decimals on every line.
        case
            when line_cost_eur is not null
                then case when is_credit then -abs(line_cost_eur) else line_cost_eur end
            else {{ to_money('quantity * standard_cost_eur') }}
        end as signed_cost_eur,
        case
            when line_cost_eur is not null then 'line_cost'
            when standard_cost_eur is not null then 'standard_cost'
            else 'missing'
        end as cost_basis
    from joined
)

select
    order_id,
    line_no,
    customer_number,
    end_user_customer_number,
    material_number,
    order_date,
    order_month,
    order_type,
    currency,
    product_line,
    product_category,
    quantity,
    net_value,
    fx_eur_per_unit,
    fx_rate_month,
    {{ to_money('signed_net_value * fx_eur_per_unit') }} as revenue_eur,
    {{ to_money('signed_cost_eur') }} as cost_eur,
    cost_basis,
    -- rounded terms first, so that margin = revenue - cost holds exactly in every layer
    {{ to_money(to_money('signed_net_value * fx_eur_per_unit') ~ ' - ' ~ to_money('signed_cost_eur')) }} as margin_eur,
    is_credit,
    has_order_header,
    is_stale_fx_rate,
    is_missing_fx_rate
from signed
