-- The floor: the pipeline's core work as ONE hand-written DuckDB script, no orchestration.
-- What a competent engineer would write to get the same yearly revenue KPI out of the same
-- landing folder: load the extracts, keep the newest version per key, join order lines to their
-- order and the month's fx rate (EUR), per-customer features, the yearly KPI table.
-- Matching, validation, steward findings and publishing are deliberately absent: the bench
-- shows them as the pipeline's extra cost. Runner: dagster_project/bench/floor.py, which
-- fills in {as_of}, {kpi_first_year}, {reporting_currency} and {reader:<system>/<entity>}
-- (read_csv / read_parquet over that entity's files, with the file name) and times each part.

-- part: ingest
create or replace macro extract_ts(file_name) as
    strptime(regexp_extract(file_name, '_(\d{8}T\d{6})\.[a-z]+$', 1), '%Y%m%dT%H%M%S');
create or replace macro erp_date(v) as
    case when v::varchar = '00000000' then null
         else coalesce(try_strptime(v::varchar, '%Y%m%d')::date, try_cast(v as date)) end;
create or replace macro is_erp_date(v) as
    v is null or v::varchar = '00000000' or erp_date(v) is not null;
create or replace macro money(v) as try_cast(v as decimal(18, 4));
create or replace macro is_money(v) as v is null or money(v) is not null;
create or replace macro is_int(v) as v is null or try_cast(v as bigint) is not null;
create or replace macro required(v) as nullif(trim(v::varchar), '') is not null;

-- The entities the KPI needs, typed; a row with a missing required value or an unparseable
-- value is dropped (the pipeline rejects it).
create table erp_order_lines as
select
    trim(order_id) as order_id,
    cast(line_no as bigint) as line_no,
    trim(material_number) as material_number,
    money(quantity) as quantity,
    money(net_value) as net_value,
    money(cost) as line_cost_eur,
    extract_ts(filename) as _extract_ts,
    filename as _source_file
from {reader:erp/order_lines}
where required(order_id) and required(line_no) and required(material_number)
    and required(quantity) and required(unit_price) and required(net_value)
    and is_int(line_no) and is_money(quantity) and is_money(unit_price)
    and is_money(discount_pct) and is_money(net_value) and is_money(cost);

create table erp_sales_orders as
select
    trim(order_id) as order_id,
    trim(customer_number) as customer_number,
    erp_date(order_date) as order_date,
    upper(trim(currency)) as currency,
    extract_ts(filename) as _extract_ts,
    filename as _source_file
from {reader:erp/sales_orders}
where required(order_id) and required(customer_number) and required(order_type)
    and required(currency) and required(order_date) and required(created_on)
    and erp_date(order_date) is not null and erp_date(created_on) is not null
    and is_erp_date(requested_delivery_date) and is_int(change_count);

create table erp_customers as
select
    trim(customer_number) as customer_number,
    extract_ts(filename) as _extract_ts,
    filename as _source_file
from {reader:erp/customers}
where required(customer_number) and required(name1) and required(country)
    and required(created_on) and erp_date(created_on) is not null and is_money(credit_limit);

create table erp_materials as
select
    trim(material_number) as material_number,
    money(standard_cost) as standard_cost_eur,
    extract_ts(filename) as _extract_ts,
    filename as _source_file
from {reader:erp/materials}
where required(material_number) and required(description) and required(product_line)
    and is_money(standard_cost);

create table erp_fx_rates as
select
    upper(trim(currency)) as currency,
    erp_date(rate_date) as rate_date,
    money(eur_per_unit) as eur_per_unit,
    extract_ts(filename) as _extract_ts,
    filename as _source_file
from {reader:erp/fx_rates}
where required(currency) and erp_date(rate_date) is not null and money(eur_per_unit) is not null;

-- The other extracts are loaded too (the pipeline ingests everything), as text.
{load_as_text}

-- part: facts
create table orders as
select * from erp_sales_orders
qualify row_number() over (partition by order_id order by _extract_ts desc) = 1;

create table order_lines as
select * from erp_order_lines
qualify row_number() over (
    partition by order_id, line_no order by _extract_ts desc) = 1;

create table customers as
select * from erp_customers
qualify row_number() over (
    partition by customer_number order by _extract_ts desc) = 1;

create table materials as
select * from erp_materials
qualify row_number() over (
    partition by material_number order by _extract_ts desc) = 1;

-- One rate per currency and month (the month's latest rate date); a month without a rate
-- takes the latest earlier month's (ASOF join below).
create table fx_monthly as
select currency, date_trunc('month', rate_date)::date as rate_month, eur_per_unit
from (
    select * from erp_fx_rates
    qualify row_number() over (
        partition by currency, rate_date order by _extract_ts desc, _source_file desc) = 1
)
where currency <> '{reporting_currency}'
qualify row_number() over (
    partition by currency, date_trunc('month', rate_date) order by rate_date desc) = 1;

create table fct_order_lines as
with lines as (
    select
        l.order_id,
        l.line_no,
        o.customer_number,
        o.order_date,
        date_trunc('month', o.order_date)::date as order_month,
        o.currency,
        l.quantity,
        l.net_value,
        l.quantity < 0 as is_credit,
        case when l.quantity < 0 then -abs(l.net_value) else l.net_value end as signed_net_value,
        case
            when l.line_cost_eur is not null
                then case when l.quantity < 0 then -abs(l.line_cost_eur) else l.line_cost_eur end
            else l.quantity * m.standard_cost_eur
        end as signed_cost_eur
    from order_lines as l
    join orders as o on o.order_id = l.order_id
    left join materials as m on m.material_number = l.material_number
    where o.order_date <= date '{as_of}'
),
rated as (
    select
        lines.*,
        case when lines.currency = '{reporting_currency}' then 1 else fx.eur_per_unit end
            as fx_eur_per_unit
    from lines
    asof left join fx_monthly as fx
        on fx.currency = lines.currency and lines.order_month >= fx.rate_month
)
select
    order_id,
    line_no,
    customer_number,
    order_date,
    cast(signed_net_value * fx_eur_per_unit as decimal(18, 4)) as revenue_eur,
    cast(signed_cost_eur as decimal(18, 4)) as cost_eur,
    cast(cast(signed_net_value * fx_eur_per_unit as decimal(18, 4))
         - cast(signed_cost_eur as decimal(18, 4)) as decimal(18, 4)) as margin_eur,
    signed_net_value
from rated;

-- part: features
-- Per ERP buyer: orders, revenue, and the buy-till-you-die inputs (DESIGN.md metric
-- dictionary: a purchase day is a day with at least one order of positive net value).
create table customer_features as
with order_values as (
    select customer_number, order_id, order_date,
           sum(revenue_eur) as revenue_eur, sum(signed_net_value) as net_value
    from fct_order_lines
    group by all
),
purchase_days as (
    select customer_number, order_date as purchase_day, sum(revenue_eur) as revenue_eur,
           row_number() over (partition by customer_number order by order_date) as day_no
    from order_values
    where net_value > 0
    group by customer_number, order_date
),
btyd as (
    select
        customer_number,
        count(*) - 1 as frequency,
        min(purchase_day) as first_purchase_day,
        max(purchase_day) as last_purchase_day,
        avg(revenue_eur) filter (where day_no > 1) as monetary_eur
    from purchase_days
    group by customer_number
),
totals as (
    select customer_number, count(*) as orders, sum(revenue_eur) as revenue_eur
    from order_values
    group by customer_number
)
select
    totals.customer_number,
    totals.orders,
    totals.revenue_eur,
    coalesce(btyd.frequency, 0) as frequency,
    date_diff('day', btyd.first_purchase_day, btyd.last_purchase_day) as recency_span_days,
    date_diff('day', btyd.first_purchase_day, date '{as_of}') as customer_age_days,
    date_diff('day', btyd.last_purchase_day, date '{as_of}') as days_since_last_purchase,
    cast(btyd.monetary_eur as decimal(18, 4)) as monetary_eur
from totals
left join btyd on btyd.customer_number = totals.customer_number;

-- part: kpis
-- Revenue, cost and margin per customer and calendar year, from the first KPI year on; lines
-- of unknown customers are not attributable and left out (as in the pipeline).
create table kpi_revenue_by_customer_year as
select
    customer_number,
    year(order_date) as year,
    count(distinct order_id) as orders,
    count(*) as order_lines,
    sum(revenue_eur) as revenue_eur,
    sum(cost_eur) as cost_eur,
    sum(margin_eur) as margin_eur
from fct_order_lines
where customer_number in (select customer_number from customers)
    and year(order_date) >= {kpi_first_year}
group by all;
