-- How much of each legacy vocabulary the label mapping covers: live records and customers per
-- system and field, by mapping status, with the share of records mapped.
with

labels as (
    select * from {{ ref('int_customer_legacy_labels_mapped') }}
    where not is_deleted
)

select
    source_system,
    label_field,
    cast(count(*) as integer) as labelled_records,
    cast(sum(case when mapping_status = 'mapped' then 1 else 0 end) as integer) as mapped_records,
    cast(sum(case when mapping_status = 'no_segment' then 1 else 0 end) as integer)
        as no_segment_records,
    cast(sum(case when mapping_status = 'unmapped' then 1 else 0 end) as integer)
        as unmapped_records,
    cast(count(distinct case when mapping_status = 'unmapped' then label end) as integer)
        as unmapped_labels,
    cast(count(distinct case when mapping_status = 'unmapped' then customer_id end) as integer)
        as customers_with_unmapped_label,
    cast(
        sum(case when mapping_status <> 'unmapped' then 1 else 0 end) as double
    ) / count(*) as coverage_share
from labels
group by source_system, label_field
