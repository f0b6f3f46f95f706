-- One row per ERP order line (newest version, up to the as-of date) with the unified customer
-- (identity map on the ERP customer number), product line and EUR revenue, cost and margin.
-- Two customers per line: the buyer (customer_id) and the customer the goods are for
-- (end_customer_id: the end user a distributor or EPC order names, else the buyer), so that
-- KPIs can count either.
--
-- Built into the fact store (profiles.yml attaches it as fact_store; dagster_project/
-- fact_store.py): its own DuckDB file in the publication's storage version, copied as the start
-- of the published file instead of encoded a second time. The published file shows the table in
-- its main schema, hence schema main here; the warehouse keeps marts.fct_order_lines as a view
-- over it (post-hook, after the commit: one DuckDB transaction writes to one file only), and
-- the Dagster asset key stays marts/fct_order_lines.
{{ config(
    database='fact_store',
    schema='main',
    meta={'dagster': {'asset_key': ['marts', 'fct_order_lines']}},
    post_hook=[
        {"sql": "create schema if not exists {{ target.database }}.marts", "transaction": false},
        {"sql": "create or replace view {{ target.database }}.marts.{{ this.identifier }} as select * from {{ this }}", "transaction": false},
    ],
) }}

with

order_lines as (
    select * from {{ ref('int_order_lines_converted_to_eur') }}
),

erp_customers as (
    select source_id as customer_number, customer_id
    from {{ ref('stg_identity__customer_source_map') }}
    where source_system = 'erp'
)

select
    -- ids
    {{ dbt.concat(["order_lines.order_id", "'-'", "cast(order_lines.line_no as " ~ dbt.type_string() ~ ")"]) }}
        as order_line_id,
    order_lines.order_id,
    order_lines.line_no,
    buyers.customer_id,
    order_lines.customer_number,
    end_users.customer_id as end_user_customer_id,
    order_lines.end_user_customer_number,
    case
        when order_lines.end_user_customer_number is not null then end_users.customer_id
        else buyers.customer_id
    end as end_customer_id,
    order_lines.material_number,

    -- dates
    order_lines.order_date,
    order_lines.order_month,
    cast({{ dbt.date_trunc('year', 'order_lines.order_date') }} as date) as order_year_start,
    cast(extract(year from order_lines.order_date) as integer) as order_year,

    -- order and product
    order_lines.order_type,
    order_lines.product_line,
    order_lines.product_category,

    -- amounts
    order_lines.currency,
    order_lines.quantity,
    order_lines.net_value,
    order_lines.fx_eur_per_unit,
    order_lines.fx_rate_month,
    order_lines.revenue_eur,
    order_lines.cost_eur,
    order_lines.cost_basis,
    order_lines.margin_eur,

    -- flags
    order_lines.is_credit,
    order_lines.has_order_header,
    order_lines.is_stale_fx_rate,
    order_lines.is_missing_fx_rate

from order_lines
left join erp_customers as buyers
    on buyers.customer_number = order_lines.customer_number
left join erp_customers as end_users
    on end_users.customer_number = order_lines.end_user_customer_number
