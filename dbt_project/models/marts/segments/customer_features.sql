-- Behavioural features per unified customer as of the run's as-of date: the inputs of the
-- service tier, the size tier and the customer-value models (dagster_project/segmentation/).
-- Events dated after the as-of are ignored; master data (employees) is taken as known.
with

identity_map as (
    select source_system, source_id, customer_id
    from {{ ref('stg_identity__customer_source_map') }}
    where customer_id is not null
),

customers as (
    select distinct customer_id from identity_map
),

-- Order headers of the unified customer (the buyer's ERP customer number).
orders as (
    select
        identity_map.customer_id,
        sales_orders.order_id,
        sales_orders.order_date,
        sales_orders.order_type,
        sales_orders.change_count,
        {{ dbt.datediff('sales_orders.order_date', 'sales_orders.requested_delivery_date', 'day') }}
            as requested_lead_days
    from {{ ref('stg_erp__sales_orders') }} as sales_orders
    inner join identity_map
        on identity_map.source_system = 'erp'
        and identity_map.source_id = sales_orders.customer_number
    where {{ is_within_as_of('sales_orders.order_date') }}
),

order_behaviour as (
    select
        customer_id,
        count(*) as order_count,
        min(order_date) as first_order_date,
        max(order_date) as last_order_date,
        avg(case when order_type = 'Rush' then 1.0 else 0.0 end) as rush_order_share,
        avg(case when order_type = 'Expedited' then 1.0 else 0.0 end) as expedited_order_share,
        avg(case when order_type in ('Rush', 'Expedited') then 1.0 else 0.0 end)
            as rush_or_expedited_order_share,
        -- the count beside the share: two rush orders among a dozen are not yet a habit
        sum(case when order_type in ('Rush', 'Expedited') then 1 else 0 end)
            as rush_or_expedited_order_count,
        avg(change_count) as change_orders_per_order,
        median(requested_lead_days) as median_requested_lead_days
    from orders
    group by customer_id
),

-- Ordering regularity: coefficient of variation of the gaps between consecutive order days
-- (0 = like clockwork; about 1 = random, RFQ-driven buying). Needs at least two gaps.
order_days as (
    select distinct customer_id, order_date from orders
),

order_gaps as (
    select
        customer_id,
        {{ dbt.datediff(
            'lag(order_date) over (partition by customer_id order by order_date)',
            'order_date', 'day') }} as gap_days
    from order_days
),

ordering_regularity as (
    select
        customer_id,
        count(gap_days) as order_gap_count,
        case
            when count(gap_days) >= 2 and avg(gap_days) > 0
                then stddev_pop(gap_days) / avg(gap_days)
        end as order_gap_cv
    from order_gaps
    where gap_days is not null
    group by customer_id
),

-- Revenue, margin and the product mix from the order lines (EUR, credit lines negative).
order_lines as (
    select
        customer_id,
        order_date,
        revenue_eur,
        margin_eur,
        product_category,
        is_credit
    from {{ ref('fct_order_lines') }}
    where customer_id is not null
),

order_line_value as (
    select
        customer_id,
        sum(revenue_eur) as revenue_eur,
        {%- if as_of_date() %}
        sum(case when order_date > cast('{{ as_of_date() }}' as date) - interval 365 day
            then revenue_eur else 0 end) as revenue_eur_365d,
        {%- else %}
        cast(null as double) as revenue_eur_365d,
        {%- endif %}
        sum(margin_eur) as margin_eur,
        -- margin % over the lines whose cost is known, so a missing cost does not read as profit
        sum(case when margin_eur is not null then revenue_eur end) as revenue_eur_with_cost,
        avg(case when not is_credit then
            case when product_category = 'Specialty' then 1.0 else 0.0 end end)
            as specialty_line_share
    from order_lines
    group by customer_id
),

-- Payment-term adherence on invoices (not credit notes) issued up to the as-of date. An invoice
-- cleared after the as-of date counts as open on the as-of date.
invoices as (
    select
        identity_map.customer_id,
        invoices.due_date,
        case when {{ is_within_as_of('invoices.cleared_on') }} then invoices.cleared_on end
            as cleared_on
    from {{ ref('stg_erp__invoices') }} as invoices
    inner join identity_map
        on identity_map.source_system = 'erp'
        and identity_map.source_id = invoices.customer_number
    where not invoices.is_credit_note
        and invoices.due_date is not null
        and {{ is_within_as_of('invoices.invoice_date') }}
),

payment_behaviour as (
    select
        customer_id,
        count(cleared_on) as cleared_invoice_count,
        avg(case when cleared_on is not null then
            case when cleared_on > due_date then 1.0 else 0.0 end end) as late_payment_share,
        avg(case when cleared_on is not null then
            greatest({{ dbt.datediff('due_date', 'cleared_on', 'day') }}, 0) end)
            as mean_days_paid_late,
        avg({{ dbt.datediff('due_date', 'cleared_on', 'day') }}) as mean_payment_delay_days
    from invoices
    group by customer_id
),

-- Service cases opened up to the as-of date, on any CRM account of the customer.
cases as (
    select identity_map.customer_id, cases.case_id
    from {{ ref('stg_crm__cases') }} as cases
    inner join identity_map
        on identity_map.source_system = 'crm'
        and identity_map.source_id = cases.account_id
    where {{ is_within_as_of('cast(cases.created_at as date)') }}
),

case_counts as (
    select customer_id, count(*) as case_count
    from cases
    group by customer_id
),

-- Service agreements running on the as-of date (started, not ended, not cancelled).
agreements as (
    select identity_map.customer_id, agreements.agreement_id, agreements.agreement_type
    from {{ ref('stg_crm__service_agreements') }} as agreements
    inner join identity_map
        on identity_map.source_system = 'crm'
        and identity_map.source_id = agreements.account_id
    where {{ is_within_as_of('agreements.start_date') }}
        and coalesce(agreements.status, '') <> 'Cancelled'
        {%- if as_of_date() %}
        and (agreements.end_date is null or agreements.end_date >= cast('{{ as_of_date() }}' as date))
        {%- endif %}
),

agreement_counts as (
    select
        customer_id,
        count(*) as active_agreement_count,
        sum(case when agreement_type <> 'Transactional' then 1 else 0 end)
            as active_long_term_agreement_count
    from agreements
    group by customer_id
),

-- Projects (CRM opportunities) created up to the as-of date on any CRM account of the customer:
-- how often they came with a service agreement shows a need for service even before any order.
opportunities as (
    select identity_map.customer_id, opportunities.includes_service_agreement
    from {{ ref('stg_crm__opportunities') }} as opportunities
    inner join identity_map
        on identity_map.source_system = 'crm'
        and identity_map.source_id = opportunities.account_id
    where {{ is_within_as_of('cast(opportunities.created_at as date)') }}
),

opportunity_behaviour as (
    select
        customer_id,
        count(*) as opportunity_count,
        avg(case
            when includes_service_agreement then 1.0
            when not includes_service_agreement then 0.0
        end) as service_attach_share
    from opportunities
    group by customer_id
),

-- Firmographics (master data, not events): the largest head count any CRM account states.
firmographics as (
    select identity_map.customer_id, max(accounts.employees) as employees
    from {{ ref('stg_crm__accounts') }} as accounts
    inner join identity_map
        on identity_map.source_system = 'crm'
        and identity_map.source_id = accounts.account_id
    where not accounts.is_deleted
    group by identity_map.customer_id
)

select
    -- ids
    customers.customer_id,
    cast({{ "'" ~ as_of_date() ~ "'" if as_of_date() else "null" }} as date) as as_of,

    -- orders and value
    coalesce(order_behaviour.order_count, 0) as order_count,
    order_behaviour.first_order_date,
    order_behaviour.last_order_date,
    {{ to_money('coalesce(order_line_value.revenue_eur, 0)') }} as revenue_eur,
    {{ to_money('coalesce(order_line_value.revenue_eur_365d, 0)') }} as revenue_eur_365d,
    {{ to_money('order_line_value.margin_eur') }} as margin_eur,
    case when order_line_value.revenue_eur_with_cost > 0
        then order_line_value.margin_eur / order_line_value.revenue_eur_with_cost
    end as margin_pct,
    order_line_value.specialty_line_share,

    -- ordering behaviour
    order_behaviour.rush_order_share,
    order_behaviour.expedited_order_share,
    order_behaviour.rush_or_expedited_order_share,
    coalesce(order_behaviour.rush_or_expedited_order_count, 0) as rush_or_expedited_order_count,
    order_behaviour.change_orders_per_order,
    order_behaviour.median_requested_lead_days,
    coalesce(ordering_regularity.order_gap_count, 0) as order_gap_count,
    ordering_regularity.order_gap_cv,

    -- payment-term adherence
    coalesce(payment_behaviour.cleared_invoice_count, 0) as cleared_invoice_count,
    payment_behaviour.late_payment_share,
    payment_behaviour.mean_days_paid_late,
    payment_behaviour.mean_payment_delay_days,

    -- service use
    coalesce(case_counts.case_count, 0) as case_count,
    case when order_behaviour.order_count > 0
        then coalesce(case_counts.case_count, 0) * 1.0 / order_behaviour.order_count
    end as cases_per_order,
    coalesce(agreement_counts.active_agreement_count, 0) as active_agreement_count,
    coalesce(agreement_counts.active_long_term_agreement_count, 0)
        as active_long_term_agreement_count,
    coalesce(opportunity_behaviour.opportunity_count, 0) as opportunity_count,
    opportunity_behaviour.service_attach_share,

    -- firmographics
    firmographics.employees

from customers
left join order_behaviour on order_behaviour.customer_id = customers.customer_id
left join ordering_regularity on ordering_regularity.customer_id = customers.customer_id
left join order_line_value on order_line_value.customer_id = customers.customer_id
left join payment_behaviour on payment_behaviour.customer_id = customers.customer_id
left join case_counts on case_counts.customer_id = customers.customer_id
left join agreement_counts on agreement_counts.customer_id = customers.customer_id
left join opportunity_behaviour on opportunity_behaviour.customer_id = customers.customer_id
left join firmographics on firmographics.customer_id = customers.customer_id
