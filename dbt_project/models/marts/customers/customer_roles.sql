-- The roles of every customer over time, from the account types of its CRM accounts
-- (int_crm_account_role_periods): one row per customer, role and period. The periods of one
-- customer's accounts that overlap or touch are one period. valid_to is the first day the role
-- no longer held; null while it holds. Roles from orders (buyer, end user named on an order)
-- are in dim_customer and fct_order_lines.
with

account_periods as (
    select * from {{ ref('int_crm_account_role_periods') }}
),

crm_accounts as (
    select source_id as account_id, customer_id
    from {{ ref('int_customer_source_records') }}
    where source_system = 'crm'
        and customer_id is not null
),

customer_periods as (
    select
        crm_accounts.customer_id,
        account_periods.role,
        account_periods.account_id,
        account_periods.valid_from,
        account_periods.valid_to
    from account_periods
    inner join crm_accounts
        on crm_accounts.account_id = account_periods.account_id
),

-- Gaps and islands over intervals: a period starts a new island when it begins after every
-- earlier period of the same customer and role has ended.
ordered as (
    select
        customer_periods.*,
        max(coalesce(valid_to, cast('9999-12-31' as date))) over (
            partition by customer_id, role
            order by valid_from, account_id
            rows between unbounded preceding and 1 preceding
        ) as earlier_end
    from customer_periods
),

islands as (
    select
        ordered.*,
        sum(case when earlier_end is null or valid_from > earlier_end then 1 else 0 end) over (
            partition by customer_id, role
            order by valid_from, account_id
            rows unbounded preceding
        ) as period_no
    from ordered
)

select
    customer_id,
    role,
    min(valid_from) as valid_from,
    case
        when max(case when valid_to is null then 1 else 0 end) = 1 then null
        else max(valid_to)
    end as valid_to,
    max(case when valid_to is null then 1 else 0 end) = 1 as is_current,
    {{ dbt.listagg('distinct account_id', "','", 'order by account_id') }} as crm_account_ids
from islands
group by customer_id, role, period_no
