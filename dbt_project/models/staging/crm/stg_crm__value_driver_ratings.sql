-- Value-driver ratings: newest rating per project and rater. The rater's name is personal
-- data: it is used as part of the key here and only leaves as a one-way hash (rater_key).
with

source as {{ segments.not_materialized() }} (
    select * from {{ source('raw', 'crm__value_driver_ratings') }}
),

renamed as {{ segments.not_materialized() }} (
    select
        -- ids
        {{ clean_text('opportunity_id') }} as opportunity_id,
        {{ clean_text('rated_by') }} as rated_by,

        -- ranks (1 = most important; null = not ranked)
        technical_excellence as technical_excellence_rank,
        price as price_rank,
        sustainability as sustainability_rank,
        service_availability as service_availability_rank,
        predictability as predictability_rank,
        delivery_speed as delivery_speed_rank,
        local_presence_reputation as local_presence_reputation_rank,

        -- timestamps
        rated_at,

        -- lineage
        _source_file,
        _line,
        _extract_ts

    from source
),

newest as (
    {{ keep_newest_version('renamed', ['opportunity_id', 'rated_by'], ['rated_at']) }}
)

select
    opportunity_id,
    case when rated_by is not null then {{ dbt.hash('rated_by') }} end as rater_key,
    technical_excellence_rank,
    price_rank,
    sustainability_rank,
    service_availability_rank,
    predictability_rank,
    delivery_speed_rank,
    local_presence_reputation_rank,
    rated_at,
    _source_file,
    _line,
    _extract_ts
from newest
