-- Every legacy label a source record carries (crm.industry, crm.legacy_segment,
-- erp.customer_group), mapped to the segment taxonomy by seeds/legacy_label_map.csv as of the
-- record's label date (CRM last modification, ERP creation): a code whose meaning drifted maps
-- by the period the label was set in. mapping_status: mapped (segment known), no_segment (a
-- known label that carries no industry: a size or role), unmapped (in no mapping row valid then).
with

records as (
    select * from {{ ref('int_customer_source_records') }}
),

label_map as (
    select
        lower(trim(source_system)) as source_system,
        lower(trim(label_field)) as label_field,
        lower(trim(label)) as label_key,
        meaning,
        segment,
        sub_segment,
        valid_from,
        valid_to
    from {{ ref('legacy_label_map') }}
),

labels as (
    {% set fields = [('crm', 'industry'), ('crm', 'legacy_segment'), ('erp', 'customer_group')] %}
    {% for system, field in fields %}
    select
        customer_id,
        source_system,
        source_id,
        '{{ field }}' as label_field,
        {{ field }} as label,
        cast(record_changed_at as date) as label_date,
        is_deleted
    from records
    where source_system = '{{ system }}'
        and {{ field }} is not null
    {% if not loop.last %}union all{% endif %}
    {% endfor %}
),

mapped as (
    select
        labels.*,
        label_map.meaning,
        label_map.segment,
        label_map.sub_segment,
        row_number() over (
            partition by labels.source_system, labels.source_id, labels.label_field
            order by label_map.valid_from desc nulls last
        ) as match_rank
    from labels
    left join label_map
        on label_map.source_system = labels.source_system
        and label_map.label_field = labels.label_field
        and label_map.label_key = lower(trim(labels.label))
        and (label_map.valid_from is null or labels.label_date >= label_map.valid_from)
        and (label_map.valid_to is null or labels.label_date <= label_map.valid_to)
)

select
    customer_id,
    source_system,
    source_id,
    label_field,
    label,
    label_date,
    is_deleted,
    segment,
    sub_segment,
    case
        when meaning is null then 'unmapped'
        when meaning = 'none' then 'no_segment'
        else 'mapped'
    end as mapping_status
from mapped
where match_rank = 1
