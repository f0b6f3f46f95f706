-- One exchange rate per currency and calendar month, for every month from the first rate or
-- order to the last. A month without a rate takes the latest earlier month's rate and is
-- flagged stale (a steward finding); months before a currency's first rate have none.
-- The reporting currency always converts at 1.
with

rates as (
    select
        currency,
        rate_date,
        rate_month,
        eur_per_unit
    from {{ ref('stg_erp__fx_rates') }}
    where currency <> '{{ var("reporting_currency") }}'
),

-- "Monthly rates": should a month hold several, the latest rate date of the month counts.
monthly_rates as (
    select
        currency,
        rate_month,
        eur_per_unit
    from (
        select
            rates.*,
            row_number() over (
                partition by currency, rate_month
                order by rate_date desc
            ) as rank_in_month
        from rates
    ) as ranked
    where rank_in_month = 1
),

-- The spine must reach every order month, so that a rate can be carried forward to it.
needed_months as (
    select rate_month as month_start from monthly_rates
    union all
    select order_month as month_start
    from {{ ref('stg_erp__sales_orders') }}
    where order_month is not null
),

bounds as (
    select
        min(month_start) as first_month,
        max(month_start) as last_month
    from needed_months
),

month_numbers as (
    {{ dbt.generate_series(var('fx_spine_max_months')) }}
),

months as (
    select
        cast({{ dbt.dateadd('month', 'month_numbers.generated_number - 1', 'bounds.first_month') }} as date)
            as month_start
    from bounds
    cross join month_numbers
    where
        month_numbers.generated_number
        <= {{ dbt.datediff('bounds.first_month', 'bounds.last_month', 'month') }} + 1
),

currencies as (
    select distinct currency from monthly_rates
),

spine as (
    select
        currencies.currency,
        months.month_start,
        monthly_rates.eur_per_unit,
        monthly_rates.rate_month
    from currencies
    cross join months
    left join monthly_rates
        on monthly_rates.currency = currencies.currency
        and monthly_rates.rate_month = months.month_start
),

-- Fill forward without IGNORE NULLS (not portable): every month with a rate starts a group
-- that the following rate-less months join.
rate_groups as (
    select
        spine.*,
        count(rate_month) over (
            partition by currency
            order by month_start
            rows between unbounded preceding and current row
        ) as rate_group
    from spine
),

filled as (
    select
        currency,
        month_start,
        max(eur_per_unit) over (partition by currency, rate_group) as eur_per_unit,
        max(rate_month) over (partition by currency, rate_group) as rate_month
    from rate_groups
),

foreign_currencies as (
    select
        currency,
        month_start,
        eur_per_unit,
        rate_month,
        coalesce(rate_month < month_start, false) as is_stale_rate,
        rate_month is null as is_missing_rate
    from filled
),

reporting_currency as (
    select
        '{{ var("reporting_currency") }}' as currency,
        month_start,
        cast(1 as decimal(18, 4)) as eur_per_unit,
        month_start as rate_month,
        false as is_stale_rate,
        false as is_missing_rate
    from months
)

select * from foreign_currencies
union all
select * from reporting_currency
