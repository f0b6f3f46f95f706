-- Survivorship: per customer and golden attribute, the value that survives and the source
-- record that supplied it, by the rule in seeds/identity_survivorship_rules.csv:
--   system_priority            live records first, then the system order of the rule, then the
--                              anchor record, then the most recently changed
--   validated_system_priority  the same, among values that pass validation (VAT id: the
--                              country's VAT prefix and at least 8 characters)
--   newest_non_null            live records first, then the most recently changed, among the
--                              systems the rule names
-- Systems not named in a rule's system_order never supply that attribute.
with

records as (
    select * from {{ ref('int_customer_source_records') }}
    where customer_id is not null
),

rules as (
    select
        attribute,
        rule,
        '|' || system_order || '|' as system_order
    from {{ ref('identity_survivorship_rules') }}
),

vat_prefixes as (
    select distinct country_code, vat_prefix
    from {{ ref('country_codes') }}
),

candidates as (
    {% set plain = ['customer_name:record_name', 'country_code:country_code',
                    'industry:industry', 'ownership:ownership', 'business_model:business_model'] %}
    {% for pair in plain %}
    {% set attribute, column = pair.split(':') %}
    select customer_id, source_system, source_id, is_anchor, is_deleted, record_changed_at,
           '{{ attribute }}' as attribute, {{ column }} as value, true as is_valid
    from records
    union all
    {% endfor %}
    -- an address is taken whole from one record (street, postal code and city belong together)
    select customer_id, source_system, source_id, is_anchor, is_deleted, record_changed_at,
           'address' as attribute, coalesce(street, postal_code, city) as value, true as is_valid
    from records
    union all
    select records.customer_id, records.source_system, records.source_id, records.is_anchor,
           records.is_deleted, records.record_changed_at, 'vat_id' as attribute,
           records.vat_id as value,
           coalesce(
               length(records.vat_id) >= 8
               and left(records.vat_id, length(vat_prefixes.vat_prefix)) = vat_prefixes.vat_prefix,
               false
           ) as is_valid
    from records
    left join vat_prefixes
        on vat_prefixes.country_code = records.country_code
),

ranked as (
    select
        candidates.*,
        rules.rule,
        row_number() over (
            partition by candidates.customer_id, candidates.attribute
            order by
                case when candidates.is_deleted then 1 else 0 end,
                case
                    when rules.rule = 'newest_non_null' then 0
                    else {{ dbt.position("'|' || candidates.source_system || '|'", 'rules.system_order') }}
                end,
                case
                    when rules.rule = 'newest_non_null' then 0
                    when candidates.is_anchor then 0
                    else 1
                end,
                candidates.record_changed_at desc nulls last,
                candidates.source_system,
                candidates.source_id
        ) as survivor_rank
    from candidates
    inner join rules
        on rules.attribute = candidates.attribute
    where candidates.value is not null
        and {{ dbt.position("'|' || candidates.source_system || '|'", 'rules.system_order') }} > 0
        and (rules.rule <> 'validated_system_priority' or candidates.is_valid)
)

select
    customer_id,
    attribute,
    value,
    source_system,
    source_id,
    rule
from ranked
where survivor_rank = 1
