-- The unified customer: one row per customer_id of the identity map, with its golden record
-- (survivorship by seeds/identity_survivorship_rules.csv, int_customer_golden_attributes) and
-- the source system of every golden attribute, its roles, its place in a group
-- (int_customer_hierarchy) and its ordering history. Roles over time: customer_roles.
with

records as (
    select * from {{ ref('int_customer_source_records') }}
    where customer_id is not null
),

orders as (
    select
        order_id,
        customer_number,
        end_user_customer_number,
        order_date
    from {{ ref('stg_erp__sales_orders') }}
    where {{ is_within_as_of('order_date') }}
),

-- The best record per customer and system: a live record before a deleted one, the anchor
-- before the others, the most recently changed first.
ranked as (
    select
        records.*,
        row_number() over (
            partition by customer_id, source_system
            order by
                case when is_deleted then 1 else 0 end,
                case when is_anchor then 0 else 1 end,
                record_changed_at desc nulls last,
                source_id
        ) as rank_in_system
    from records
),

primary_crm as (
    select * from ranked where source_system = 'crm' and rank_in_system = 1
),

primary_erp as (
    select * from ranked where source_system = 'erp' and rank_in_system = 1
),

record_summary as (
    select
        customer_id,
        sum(case when source_system = 'crm' then 1 else 0 end) as crm_account_count,
        sum(case when source_system = 'erp' then 1 else 0 end) as erp_customer_count,
        {{ dbt.listagg("case when source_system = 'crm' then source_id end", "','", "order by source_id") }}
            as crm_account_ids,
        {{ dbt.listagg("case when source_system = 'erp' then source_id end", "','", "order by source_id") }}
            as erp_customer_numbers,
        max(case when crm_role = 'end_user' then 1 else 0 end) = 1 as has_end_user_role,
        max(case when crm_role = 'distributor' then 1 else 0 end) = 1 as is_distributor,
        max(case when crm_role = 'epc' then 1 else 0 end) = 1 as is_epc,
        max(case when crm_role = 'partner' then 1 else 0 end) = 1 as is_partner,
        max(case when crm_role = 'competitor' then 1 else 0 end) = 1 as is_competitor,
        max(case when crm_role = 'customer' then 1 else 0 end) = 1 as is_crm_customer,
        min(case when is_deleted then 1 else 0 end) = 1 as is_deleted
    from records
    group by customer_id
),

erp_records as (
    select source_id as customer_number, customer_id
    from records
    where source_system = 'erp'
),

order_summary as (
    select
        erp_records.customer_id,
        count(distinct orders.order_id) as order_count,
        min(orders.order_date) as first_order_date,
        max(orders.order_date) as last_order_date
    from orders
    inner join erp_records
        on erp_records.customer_number = orders.customer_number
    group by erp_records.customer_id
),

-- Named as the end user on someone else's order (the buyer being a distributor or EPC).
end_users_on_orders as (
    select distinct erp_records.customer_id
    from orders
    inner join erp_records
        on erp_records.customer_number = orders.end_user_customer_number
),

hierarchy as (
    select * from {{ ref('int_customer_hierarchy') }}
),

roles as (
    select
        record_summary.customer_id,
        coalesce(order_summary.order_count, 0) > 0 as is_buyer,
        record_summary.has_end_user_role or end_users_on_orders.customer_id is not null
            as is_end_user,
        record_summary.erp_customer_count = 0 and coalesce(order_summary.order_count, 0) = 0
            as is_prospect,
        record_summary.is_crm_customer,
        record_summary.is_distributor,
        record_summary.is_epc,
        record_summary.is_partner,
        record_summary.is_competitor
    from record_summary
    left join order_summary
        on order_summary.customer_id = record_summary.customer_id
    left join end_users_on_orders
        on end_users_on_orders.customer_id = record_summary.customer_id
),

{% set golden_attributes = ['customer_name', 'address', 'country_code', 'vat_id', 'industry',
                            'ownership', 'business_model'] %}
golden as (
    select
        customer_id,
        {% for attribute in golden_attributes %}
        max(case when attribute = '{{ attribute }}' then value end) as {{ attribute }}_value,
        max(case when attribute = '{{ attribute }}' then source_system end) as {{ attribute }}_system,
        max(case when attribute = '{{ attribute }}' then source_id end) as {{ attribute }}_record
        {%- if not loop.last %},{% endif %}
        {% endfor %}
    from {{ ref('int_customer_golden_attributes') }}
    group by customer_id
)

select
    -- ids
    record_summary.customer_id,
    primary_crm.source_id as primary_crm_account_id,
    primary_erp.source_id as primary_erp_customer_number,

    -- hierarchy
    hierarchy.parent_customer_id,
    hierarchy.group_customer_id,
    hierarchy.served_by_customer_id,

    -- golden record (value, and the system that supplied it)
    golden.customer_name_value as customer_name,
    golden.customer_name_system as name_source,
    address_records.street,
    address_records.postal_code,
    address_records.city,
    golden.address_system as address_source,
    golden.country_code_value as country_code,
    golden.country_code_system as country_source,
    coalesce(
        primary_crm.owner_region,
        country_records.country_region,
        '{{ var("unknown_region") }}'
    ) as region,
    case
        when primary_crm.owner_region is not null then 'crm_owner_region'
        when country_records.country_region is not null then 'country'
        else 'unknown'
    end as region_source,
    golden.vat_id_value as vat_id,
    golden.vat_id_system as vat_id_source,
    primary_crm.website_domain,
    golden.industry_value as industry,
    golden.industry_system as industry_source,
    golden.ownership_value as ownership,
    golden.ownership_system as ownership_source,
    golden.business_model_value as business_model,
    golden.business_model_system as business_model_source,

    -- source records
    cast(record_summary.crm_account_count as integer) as crm_account_count,
    cast(record_summary.erp_customer_count as integer) as erp_customer_count,
    record_summary.crm_account_ids,
    record_summary.erp_customer_numbers,

    -- roles: every role the customer has, in one fixed order (the flags below say the same)
    nullif(concat_ws(',',
        {%- for role in ['customer', 'buyer', 'end_user', 'distributor', 'epc', 'partner',
                         'competitor', 'prospect'] %}
        case when {{ 'roles.is_crm_customer' if role == 'customer' else 'roles.is_' ~ role }}
            then '{{ role }}' end{% if not loop.last %},{% endif %}
        {%- endfor %}
    ), '') as roles,
    roles.is_buyer,
    roles.is_end_user,
    record_summary.is_distributor,
    record_summary.is_epc,
    record_summary.is_partner,
    record_summary.is_competitor,
    roles.is_prospect,
    record_summary.is_deleted,

    -- ordering history (orders up to the as-of date)
    cast(coalesce(order_summary.order_count, 0) as integer) as order_count,
    order_summary.first_order_date,
    order_summary.last_order_date

from record_summary
left join primary_crm
    on primary_crm.customer_id = record_summary.customer_id
left join primary_erp
    on primary_erp.customer_id = record_summary.customer_id
left join hierarchy
    on hierarchy.customer_id = record_summary.customer_id
left join roles
    on roles.customer_id = record_summary.customer_id
left join order_summary
    on order_summary.customer_id = record_summary.customer_id
left join golden
    on golden.customer_id = record_summary.customer_id
left join records as address_records
    on address_records.source_system = golden.address_system
    and address_records.source_id = golden.address_record
left join records as country_records
    on country_records.source_system = golden.country_code_system
    and country_records.source_id = golden.country_code_record
