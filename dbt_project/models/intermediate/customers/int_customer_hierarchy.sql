-- Parent and group of every customer, from the CRM parent account links.
--
-- A customer's parent link is the one of its CRM accounts that names an account of another
-- customer (live accounts first, then the anchor, then the most recently changed). CRM uses the
-- same field for two relations: a group parent, and the distributor or EPC contractor an end
-- user buys through. A link from an end-user-only customer to a distributor or EPC is the
-- second kind (`channel`): it is published as served_by, never climbed as a group.
-- The group top is found by walking group parents up to {{ max_group_depth }} levels; a chain
-- that loops or goes deeper has no group top (null) rather than an arbitrary one.
{% set max_group_depth = 8 %}
with

records as (
    select * from {{ ref('int_customer_source_records') }}
    where customer_id is not null
),

crm_accounts as (
    select source_id as account_id, customer_id
    from records
    where source_system = 'crm'
),

role_summary as (
    select
        customer_id,
        max(case when crm_role in ('distributor', 'epc') then 1 else 0 end) = 1 as sells_on,
        max(case when crm_role = 'end_user' then 1 else 0 end) = 1
            and max(case when crm_role in ('customer', 'distributor', 'epc') then 1 else 0 end) = 0
            as is_end_user_only
    from records
    group by customer_id
),

parent_links as (
    select
        records.customer_id,
        parents.customer_id as parent_customer_id,
        row_number() over (
            partition by records.customer_id
            order by
                case when records.is_deleted then 1 else 0 end,
                case when records.is_anchor then 0 else 1 end,
                records.record_changed_at desc nulls last,
                records.source_id
        ) as link_rank
    from records
    inner join crm_accounts as parents
        on parents.account_id = records.parent_account_id
    where records.source_system = 'crm'
        and parents.customer_id <> records.customer_id
),

links as (
    select
        parent_links.customer_id,
        parent_links.parent_customer_id,
        case
            when children.is_end_user_only and parents.sells_on then 'channel'
            else 'group'
        end as relation
    from parent_links
    inner join role_summary as children
        on children.customer_id = parent_links.customer_id
    inner join role_summary as parents
        on parents.customer_id = parent_links.parent_customer_id
    where parent_links.link_rank = 1
),

group_parents as (
    select customer_id, parent_customer_id
    from links
    where relation = 'group'
),

customers as (
    select distinct customer_id from records
),

walk as (
    select
        customers.customer_id,
        customers.customer_id as ancestor_0
        {%- for level in range(1, max_group_depth + 2) %},
        level_{{ level }}.parent_customer_id as ancestor_{{ level }}
        {%- endfor %}
    from customers
    {%- for level in range(1, max_group_depth + 2) %}
    left join group_parents as level_{{ level }}
        on level_{{ level }}.customer_id = {{ 'customers.customer_id' if level == 1
            else 'level_' ~ (level - 1) ~ '.parent_customer_id' }}
    {%- endfor %}
)

select
    walk.customer_id,
    group_parents.parent_customer_id,
    channel.parent_customer_id as served_by_customer_id,
    case
        when walk.ancestor_{{ max_group_depth + 1 }} is null then coalesce(
            {%- for level in range(max_group_depth, -1, -1) %}
            walk.ancestor_{{ level }}{% if not loop.last %},{% endif %}
            {%- endfor %}
        )
    end as group_customer_id,
    case
        when walk.ancestor_{{ max_group_depth + 1 }} is null then
            {%- for level in range(1, max_group_depth + 1) %}
            case when walk.ancestor_{{ level }} is not null then 1 else 0 end
            {%- if not loop.last %} +{% endif %}
            {%- endfor %}
    end as group_depth
from walk
left join group_parents
    on group_parents.customer_id = walk.customer_id
left join links as channel
    on channel.customer_id = walk.customer_id
    and channel.relation = 'channel'
